"""Start `streamlit run`, open every page in headless Chromium, check that no exception shows.

Screenshots go to tests/e2e/screenshots/ (gitignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import harness

SHOTS = Path(__file__).resolve().parent / "screenshots"
PAGES = {
    "home": "",
    "network": "Network",
    "hotspots": "Hotspots",
    "data": "Data",
    "lab": "Scenario_lab",
    "plans": "Plans",
    "compare": "Compare",
    "audit": "Audit_log",
    "admin": "Admin",
    "backtest": "Backtest",
    "monitor": "Monitor",
}
# What each page must have drawn before its screenshot is taken.
READY = {
    "home": ".js-plotly-plot",
    "network": '[data-testid="stDeckGlJsonChart"]',
    "hotspots": ".js-plotly-plot",
    "data": '[data-testid="stDataFrame"]',
    "lab": '[data-testid="stDeckGlJsonChart"]',
    "plans": '[data-testid="stDataFrame"]',
    "compare": ".js-plotly-plot",
    "audit": '[data-testid="stDataFrame"]',
    "admin": '[data-testid="stDataFrame"]',
    "backtest": '[data-testid="stSlider"]',
    "monitor": ".js-plotly-plot",
}
TITLES = {"Audit_log": "Audit log", "Compare": "Compare scenarios"}

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store_url(loaded_db, tmp_path_factory) -> str:
    """A store with users and two solved scenarios, one of them submitted for review."""
    from rebal_core import services, store
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.governance.identity import Actor
    from rebal_core.services import workflow
    from tests.conftest import workflow_store

    url = workflow_store(loaded_db, tmp_path_factory.mktemp("browser") / "browser.db")
    engine = store.make_engine(url)
    dataset = store.find_dataset(engine=engine, name="Small network")
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    pat = Actor("pat", "planner")
    for name, sl in (("98% service", 0.98), ("95% service", 0.95)):
        record = workflow.save_scenario(
            engine=engine,
            actor=pat,
            dataset_id=dataset.id,
            scenario=Scenario(name=name, service_level=sl),
            time_limit=5,
        )
        record = workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id, network=net)
    workflow.transition(
        engine=engine, actor=pat, scenario_id=record.id, event="submit"
    )  # "95% service" waits for an approver
    return url


@pytest.fixture(scope="module")
def server(store_url):
    with harness.serve(store_url) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(harness.CHROMIUM).exists():
        pytest.fail(f"{harness.CHROMIUM} is missing; `make test` installs Debian's chromium")
    with harness.chromium() as b:
        yield b


def _settle(page) -> None:
    """Wait until the app is idle (Streamlit's script state), not for a fixed time."""
    harness.wait_idle(page)


def open_page(browser, server: str, path: str, user: str = "admin"):
    """A new browser tab on ``path``, signed in (each page load is a new session), idle."""
    from tests.conftest import PASSWORDS

    return harness.open_page(browser, server, path, user, PASSWORDS[user])


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_without_exception(server, browser, name):
    page = open_page(browser, server, PAGES[name])
    page.wait_for_selector(READY[name], timeout=30_000)
    harness.wait_idle(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()
    assert page.locator("h1").first.inner_text().strip() in (
        "Rebal",
        TITLES.get(PAGES[name], PAGES[name].replace("_", " ")),
    )
    assert "Traceback" not in page.content()
    assert not page.outside, f"requests left the machine: {page.outside[:3]}"
    page.close()


def test_scenario_lab_draws_transfer_arcs(server, browser):
    page = open_page(browser, server, "Scenario_lab")
    deck = page.locator('[data-testid="stDeckGlJsonChart"]').first
    deck.scroll_into_view_if_needed()
    page.wait_for_selector('[data-testid="stDeckGlJsonChart"] canvas', timeout=30_000)
    harness.wait_idle(page)
    SHOTS.mkdir(exist_ok=True)
    deck.screenshot(path=str(SHOTS / "lab-map.png"))
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not page.outside, f"requests left the machine: {page.outside[:3]}"
    page.close()


def test_network_map_draws_sites(server, browser):
    page = open_page(browser, server, "Network")
    # deck.gl renders into a canvas inside the pydeck element (WebGL through SwiftShader).
    page.wait_for_selector('[data-testid="stDeckGlJsonChart"] canvas', timeout=30_000)
    harness.wait_idle(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "network-map.png"), full_page=True)
    assert page.locator('[data-testid="stDeckGlJsonChart"] canvas').count() >= 1
    page.close()


def test_data_page_refuses_a_broken_upload(server, browser, small_bundle, tmp_path):
    """A planner uploads a zip whose inventory lost a column: the errors show, nothing is imported."""
    import zipfile

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as z:
        for f in small_bundle.iterdir():
            text = f.read_text()
            if f.name == "inventory.csv":
                text = "\n".join(",".join(line.split(",")[:2]) for line in text.splitlines())
            z.writestr(f.name, text)
    page = open_page(browser, server, "Data")
    page.get_by_text("Import a bundle").click()
    page.locator('input[type="file"]').set_input_files(str(broken))
    page.get_by_role("button", name="Validate and import").click()
    page.get_by_text("nothing was imported").wait_for(timeout=60_000)
    harness.wait_idle(page)
    page.screenshot(path=str(SHOTS / "data-errors.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_compare_approve_export(server, browser, tmp_path):
    """An approver compares the two scenarios, approves the waiting lines and the plan, releases it and downloads the orders."""
    page = open_page(browser, server, "Compare", user="ann")
    # the KPI table's A / B / delta header (the grid keeps an accessible copy of its headers)
    page.get_by_text("95% service - 98% service").or_(page.get_by_text("98% service - 95% service")).first.wait_for(
        state="attached", timeout=60_000
    )
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0

    page.get_by_role("link", name="Plans").click()  # in-app navigation keeps the session
    _settle(page)
    page.get_by_text("Waiting for a decision").wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Approve plan").is_enabled()  # the plan in review is the one shown
    page.get_by_role("button", name="Pick all").click()
    _settle(page)
    page.get_by_role("button", name="Approve", exact=False).filter(has_text="line(s)").click()
    page.get_by_text("Approve:").first.wait_for(timeout=60_000)
    _settle(page)
    page.get_by_role("button", name="Approve plan").click()
    page.get_by_text("is now approved").wait_for(timeout=60_000)
    _settle(page)
    page.get_by_role("button", name="Release", exact=True).click()
    _settle(page)
    page.get_by_role("button", name="Confirm release").click()  # irreversible: the page asks first
    page.get_by_text("is now released").wait_for(timeout=60_000)
    _settle(page)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Transfer orders CSV").click()
    target = tmp_path / "orders.csv"
    download.value.save_as(target)
    page.screenshot(path=str(SHOTS / "plans-released.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()

    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the names right
    import pandas as pd

    orders = pd.read_csv(target, encoding="utf-8-sig")
    assert len(orders) > 0 and orders["transfer_id"].is_unique
    assert {
        "transfer_id",
        "sku_id",
        "from_site",
        "to_site",
        "qty",
        "packs",
        "ship_by",
        "arrive_by",
        "lane_trucks",
        "cost",
        "reason",
        "approval_status",
        "approver",
    } <= set(orders.columns)
    assert set(orders["approval_status"].str.split(" ").str[0]) <= {"approved", "firm"}
    assert "ann" in set(orders["approver"]) or orders["approver"].str.startswith("policy").all()
