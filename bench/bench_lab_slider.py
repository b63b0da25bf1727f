"""The Scenario lab's slider in a real browser: move -> redrawn, 10 moves, median and p90 (issue 14: <= 2 s median).

Starts `streamlit run` on a copy of the sample store, signs in with headless Chromium, opens the
Scenario lab and moves the service-level slider 10 steps to values not solved before (each a new
solve), then the same 10 steps back (solved: the cache answers; the baseline in the same run).
Each move is timed from the key press to the browser's paint after the script run, and split into
queue (press -> run starts), run (server: the page's script) and draw (run ends -> painted).
Then the same scenarios are solved in this process, step by step, to show where a run's time goes.

    PYTHONPATH=. .venv/bin/python bench/bench_lab_slider.py [--moves 10] [--time-limit 1]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from pathlib import Path

from tests.e2e import harness

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "bench" / "lab-slider.db"
USER, PASSWORD = "bench-planner", "bench-planner-password-1"


def prepare_store() -> str:
    """A store with the sample network and a planner account (a copy of the app's store when it has the sample)."""
    from rebal_core import services
    from rebal_core.governance.identity import Actor
    from rebal_core.services import accounts, workflow

    STORE.parent.mkdir(parents=True, exist_ok=True)
    STORE.unlink(missing_ok=True)
    url = f"sqlite:///{STORE}"
    app_store = ROOT / "data" / "rebal.db"
    if app_store.exists() and services.list_datasets(engine=services.make_engine(f"sqlite:///{app_store}")):
        with sqlite3.connect(app_store) as src, sqlite3.connect(STORE) as dst:
            src.backup(dst)
    engine = services.make_engine(url)
    if not services.list_datasets(engine=engine):
        print("loading the sample network into the bench store (first run only)...", flush=True)
        services.ensure_sample(engine=engine)
    workflow.ensure_governance(engine=engine)
    admin = Actor("bench", "admin")
    if USER not in {u.username for u in accounts.list_users(engine=engine)}:
        accounts.create_user(engine=engine, actor=admin, username=USER, role="planner", password=PASSWORD)
    return url


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def move(page, thumb, key: str) -> dict:
    """One slider step; times in seconds from the key press."""
    since = harness.runs_so_far(page)
    pressed = page.evaluate("() => performance.now()")
    thumb.press(key)
    painted = harness.wait_for_run(page, since)
    runs = page.evaluate("(n) => window.__rebalRuns.slice(n)", since)
    started = next(t for s, t in runs if s == "running")
    finished = [t for s, t in runs if s == "notRunning"][-1]
    value = thumb.get_attribute("aria-valuetext")
    return {
        "value": value,
        "total": (painted - pressed) / 1000,
        "queue": (started - pressed) / 1000,
        "run": (finished - started) / 1000,
        "draw": (painted - finished) / 1000,
        "runs": sum(1 for s, _ in runs if s == "running"),
    }


def browser_moves(url: str, moves: int) -> tuple[list[dict], list[dict]]:
    with harness.serve(url) as server, harness.chromium() as browser:
        page = harness.open_page(browser, server, "Scenario_lab", USER, PASSWORD)
        page.wait_for_selector('[data-testid="stDeckGlJsonChart"]', timeout=harness.WAIT_MS)
        harness.wait_idle(page)
        thumb = page.locator('[data-testid="stSlider"] input[type=range][aria-label="Service level"]')
        assert thumb.input_value() == "0.95", thumb.input_value()
        fresh = [move(page, thumb, "ArrowLeft") for _ in range(moves)]
        back = [move(page, thumb, "ArrowRight") for _ in range(moves)]
        assert page.locator('[data-testid="stException"]').count() == 0
        return fresh, back


def in_process(url: str, levels: list[float], time_limit: float) -> list[dict]:
    """The page's steps for each scenario, timed here (the same service calls the page makes)."""
    from rebal_core import services
    from rebal_core.services import Scenario, lab
    from rebal_core.views.figures import transfer_map

    engine = services.make_engine(url)
    dataset = services.list_datasets(engine=engine)[0]
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    rows = []
    for level in levels:
        times = {}
        t = time.perf_counter()
        problem = lab.problem(net, Scenario(service_level=level))
        times["problem"] = time.perf_counter() - t
        t = time.perf_counter()
        best = lab.solve(dataset=dataset, problem=problem, time_limit=time_limit, draws=0)
        times["optimize"] = time.perf_counter() - t
        t = time.perf_counter()
        lab.uncertainty(problem, best.table)
        times["monte carlo"] = time.perf_counter() - t
        t = time.perf_counter()
        deck = transfer_map(best.sites_after, best.table, net.sites).to_json()
        times["map"] = time.perf_counter() - t
        summary = best.summary
        rows.append(
            {
                **times,
                "level": level,
                "map MB": len(deck) / 1e6,
                "lines": summary.lines,
                "fill": summary.fill_rate_after,
                "cost": summary.network_cost_after,
                "status": summary.solver_status,
            }
        )
    return rows


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--moves", type=int, default=10)
    args.add_argument("--time-limit", type=float, default=1.0, help="the lab's default limit per solve")
    opts = args.parse_args()
    url = prepare_store()
    fresh, back = browser_moves(url, opts.moves)
    print(f"Scenario lab, sample network, service-level slider, {opts.moves} moves each way (Chromium, headless)")
    print(
        f"{'move':>4} {'level':>6} {'total s':>8} {'queue':>6} {'run':>6} {'draw':>6} {'runs':>5}  (new value: solves)"
    )
    for i, m in enumerate(fresh, 1):
        print(
            f"{i:>4} {m['value']:>6} {m['total']:8.2f} {m['queue']:6.2f} {m['run']:6.2f} {m['draw']:6.2f} {m['runs']:5d}"
        )
    for name, rows in (("new values (solve)", fresh), ("back (cached, baseline)", back)):
        totals = [m["total"] for m in rows]
        print(
            f"{name:<26} median {statistics.median(totals):5.2f} s  p90 {pct(totals, 0.9):5.2f} s"
            f"  (run {statistics.median(m['run'] for m in rows):.2f}, draw {statistics.median(m['draw'] for m in rows):.2f},"
            f" queue {statistics.median(m['queue'] for m in rows):.2f})"
        )
    levels = [float(m["value"]) for m in fresh]
    steps = in_process(url, levels, opts.time_limit)
    print("\nWhere a run's time goes (same scenarios solved in this process, medians in s):")
    for key, note in (
        ("problem", ""),
        ("optimize", "(greedy rule first, then the search to the end of its rounds: the same plan whatever the load)"),
        ("monte carlo", "(only while its expander is open)"),
        ("map", "(deck JSON)"),
    ):
        print(f"  {key:<12} {statistics.median(r[key] for r in steps):6.3f} {note}")
    print(f"  map payload  {statistics.median(r['map MB'] for r in steps):6.2f} MB")
    print("\nPlans (in process):")
    for r in steps:
        print(f"  {r['level']:.3f}: {r['lines']:,} lines, fill {r['fill']:.2%}, cost {r['cost']:,.0f}, {r['status']}")


if __name__ == "__main__":
    main()
