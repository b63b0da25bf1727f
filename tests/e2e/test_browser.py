"""Start `streamlit run`, open every page in headless Chromium, check that no exception shows.

Screenshots go to tests/e2e/screenshots/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PAGES = {"home": "", "network": "Network", "hotspots": "Hotspots", "data": "Data", "lab": "Scenario_lab"}
# What each page must have drawn before its screenshot is taken.
READY = {"home": ".js-plotly-plot", "network": '[data-testid="stDeckGlJsonChart"]', "hotspots": ".js-plotly-plot", "data": '[data-testid="stDataFrame"]', "lab": '[data-testid="stDeckGlJsonChart"]'}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(loaded_db):
    port = _free_port()
    env = {**os.environ, "REBAL_DATABASE_URL": loaded_db}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not become healthy within 60 s:\n" + proc.stdout.read().decode(errors="replace")[-3000:])
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        yield b
        b.close()


def _settle(page) -> None:
    """Wait for the script run to finish: the status widget disappears and a heading is drawn."""
    page.wait_for_selector("h1", timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(1500)


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_without_exception(server, browser, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{PAGES[name]}")
    _settle(page)
    page.wait_for_selector(READY[name], timeout=30_000)
    page.wait_for_timeout(1000)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
    assert page.locator("h1").first.inner_text().strip() in ("Rebal", PAGES[name].replace("_", " "))
    assert "Traceback" not in page.content()
    page.close()


def test_scenario_lab_draws_transfer_arcs(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Scenario_lab")
    _settle(page)
    deck = page.locator('[data-testid="stDeckGlJsonChart"]').first
    deck.scroll_into_view_if_needed()
    page.wait_for_selector('[data-testid="stDeckGlJsonChart"] canvas', timeout=30_000)
    page.wait_for_timeout(2500)
    SHOTS.mkdir(exist_ok=True)
    deck.screenshot(path=str(SHOTS / "lab-map.png"))
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_network_map_draws_sites(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Network")
    _settle(page)
    # deck.gl renders into a canvas inside the pydeck element (WebGL through SwiftShader).
    page.wait_for_selector('[data-testid="stDeckGlJsonChart"] canvas', timeout=30_000)
    page.wait_for_timeout(2000)
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
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Data")
    _settle(page)
    page.get_by_text("Import a bundle").click()
    page.locator('input[type="file"]').set_input_files(str(broken))
    page.get_by_role("button", name="Validate and import").click()
    page.get_by_text("nothing was imported").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "data-errors.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
