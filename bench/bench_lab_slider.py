"""The Scenario lab in a real browser, at the sizes a meeting uses, idle and beside other sessions (issue 24).

Starts `streamlit run` on a bench store holding the network, signs in with headless Chromium, opens
the Scenario lab and moves its controls as a planner would:

1. ``grid``: the service-level slider 10 steps at the default settings (after ``--presolve`` the
   grid solved ahead answers them; without it each is a new solve);
2. ``new``: the minimum move set to 10 (the coupled network: trucks, lane and receive capacities,
   minimum moves), then the service-level slider 10 steps: settings nobody solved;
3. ``fill``: the fill-rate target on, then 5 steps of it;
4. ``budget``: a budget on, then 5 changes of it.

Each move is timed from the key press to the first plan drawn for it (the plan's cards are no
longer stale: the reproducible plan or a provisional one) and to the final plan (the script idle,
no provisional label). ``--load 2`` runs two other sessions solving the same network's plans in
other processes the whole time. The moves' limit is the lab's default wait, 1 s; ``--best`` solves
a few of the final settings for 120 s to report how far the final plan is from the best known.

    PYTHONPATH=. .venv/bin/python bench/bench_lab_slider.py [--network sample|medium|large] [--load 2]
        [--presolve [--visited-only]] [--moves 10] [--fill-moves 5] [--budget-moves 5] [--best 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e import harness

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "data" / "bench"
USER, PASSWORD = "bench-planner", "bench-planner-password-1"
NETWORKS = {  # name: synth arguments (None: the app's sample)
    "sample": None,
    "medium": ("--sites", "50", "--skus", "5000", "--days", "7", "--seed", "1"),
    "large": ("--sites", "200", "--skus", "20000", "--days", "7", "--seed", "1"),
}
FIRST_PLAN_JS = """() => {
  const card = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.includes('Network cost'));
  const box = card && card.closest('[data-testid="stElementContainer"]');
  return !!box && box.getAttribute('data-stale') !== 'true';
}"""


def prepare_store(network: str) -> str:
    """A store with the network and a planner account (made once per network, then reused)."""
    from rebal_core import services
    from rebal_core.governance.identity import Actor
    from rebal_core.services import accounts, workflow

    BENCH.mkdir(parents=True, exist_ok=True)
    path = BENCH / f"lab-{network}.db"
    url = f"sqlite:///{path}"
    app_store = ROOT / "data" / "rebal.db"
    if network == "sample" and not path.exists() and app_store.exists():
        with sqlite3.connect(app_store) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
    engine = services.make_engine(url)
    if not services.list_datasets(engine=engine):
        print(f"loading the {network} network into the bench store (first run only)...", flush=True)
        if network == "sample":
            services.ensure_sample(engine=engine)
        else:
            folder = BENCH / network
            if not (folder / "sites.csv").exists():
                subprocess.run(
                    [sys.executable, "-m", "rebal_core", "synth", *NETWORKS[network], str(folder)], cwd=ROOT, check=True
                )
            services.import_bundle(engine=engine, source=folder, name=f"bench {network}")
    workflow.ensure_governance(engine=engine)
    if USER not in {u.username for u in accounts.list_users(engine=engine)}:
        accounts.create_user(
            engine=engine, actor=Actor("bench", "admin"), username=USER, role="planner", password=PASSWORD
        )
    return url


def forget_plans(url: str) -> None:
    """Start from a store that solved nothing (the grid is solved by --presolve, timed)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM solved_plan")


def presolve(url: str, whole: bool, moves: int) -> float:
    """Solve the grid ahead (timed): the whole grid, or only the part the grid moves visit (the default
    and the ``moves`` service levels below it), which is what a large network can afford in a bench."""
    from rebal_core import services
    from rebal_core.services import presolve as grid

    engine = services.make_engine(url)
    dataset = services.list_datasets(engine=engine)[0]
    scenarios = grid.grid()
    if not whole:
        visited = {round(0.95 - 0.005 * i, 3) for i in range(moves + 1)}
        scenarios = [
            s
            for s in scenarios
            if s.objective == "expected" and s.target_fill_rate is None and s.service_level in visited
        ]
    t = time.perf_counter()
    done = grid.solve_grid(engine=engine, dataset_id=dataset.id, scenarios=scenarios)
    print(
        f"grid solved ahead: {done['solved']} of {done['scenarios']} scenarios in {time.perf_counter() - t:.1f} s "
        f"(slowest {done['slowest']:.1f} s)",
        flush=True,
    )
    return time.perf_counter() - t


def other_session(url: str, seed: int, stop) -> None:
    """Another session solving plans of the same network (reproducible, not stored) until stopped."""
    import random

    from rebal_core import services
    from rebal_core.services import Scenario, lab

    engine = services.make_engine(url)
    dataset = services.list_datasets(engine=engine)[0]
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    rng = random.Random(seed)
    while not stop.is_set():
        scenario = Scenario(service_level=round(rng.uniform(0.8, 0.99), 3), cost_per_move=float(rng.randint(0, 20)))
        lab.solve(dataset=dataset, problem=lab.problem(net, scenario), draws=0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timed(page, act) -> dict:
    """Do ``act`` (a key press, a click) and time the first plan drawn and the final one."""
    since = harness.runs_so_far(page)
    pressed = page.evaluate("() => performance.now()")
    act()
    page.wait_for_function("(n) => (window.__rebalRuns || []).length > n", arg=since, timeout=harness.WAIT_MS)
    page.wait_for_function(FIRST_PLAN_JS, timeout=harness.WAIT_MS, polling="raf")
    first = page.evaluate("() => performance.now()")
    provisional_seen = page.get_by_text("Provisional:").count() > 0
    # Final: a run since the press has ended and no provisional label is left (the final plan's rerun).
    page.wait_for_function(
        "(n) => (" + harness.RUN_FINISHED_SINCE.strip() + ")(n) && !document.body.innerText.includes('Provisional:')",
        arg=since,
        timeout=harness.WAIT_MS,
        polling=20,
    )
    painted = page.evaluate(harness.PAINTED)
    return {"first": (first - pressed) / 1000, "final": (painted - pressed) / 1000, "provisional": provisional_seen}


def browser_moves(url: str, opts) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with harness.serve(url) as server, harness.chromium() as browser:
        page = harness.open_page(browser, server, "Scenario_lab", USER, PASSWORD)
        page.wait_for_selector('[data-testid="stDeckGlJsonChart"]', timeout=harness.WAIT_MS)
        harness.wait_idle(page)
        page.wait_for_function(
            "() => !document.body.innerText.includes('Provisional:')", timeout=harness.WAIT_MS, polling=100
        )
        slider = page.locator('[data-testid="stSlider"] input[type=range][aria-label="Service level"]')
        out["grid"] = [timed(page, lambda: slider.press("ArrowLeft")) for _ in range(opts.moves)]
        print(f"  grid moves done: {[round(m['final'], 2) for m in out['grid']]}", flush=True)
        min_move = page.get_by_label("Minimum move (units)")
        timed(page, lambda: (min_move.fill("10"), min_move.press("Enter")))
        out["new"] = [timed(page, lambda: slider.press("ArrowRight")) for _ in range(opts.moves)]
        print(f"  new moves done: {[round(m['final'], 2) for m in out['new']]}", flush=True)
        if opts.fill_moves:
            timed(page, lambda: page.get_by_text("Fill-rate target", exact=True).click())
            fill = page.locator('[data-testid="stSlider"] input[type=range][aria-label="Target expected fill rate"]')
            out["fill"] = [timed(page, lambda: fill.press("ArrowRight")) for _ in range(opts.fill_moves)]
            print(f"  fill-rate moves done: {[round(m['final'], 2) for m in out['fill']]}", flush=True)
            timed(page, lambda: page.get_by_text("Fill-rate target", exact=True).click())
        if opts.budget_moves:
            timed(page, lambda: page.get_by_text("Budget", exact=True).click())
            budget = page.get_by_label("Budget ($)")
            out["budget"] = []
            for i in range(opts.budget_moves):
                value = str(40_000 - 5_000 * i)
                out["budget"].append(timed(page, lambda v=value: (budget.fill(v), budget.press("Enter"))))
            print(f"  budget moves done: {[round(m['final'], 2) for m in out['budget']]}", flush=True)
        assert page.locator('[data-testid="stException"]').count() == 0
    return out


def best_known(url: str, settings: list[dict], seconds: float) -> list[tuple[float, float]]:
    """(the lab's reproducible plan, the better of it and a ``seconds`` time-limited solve) per settings."""
    from rebal_core import services
    from rebal_core.decisions.solvers.method import plan
    from rebal_core.services import Scenario, lab

    engine = services.make_engine(url)
    dataset = services.list_datasets(engine=engine)[0]
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    rows = []
    for params in settings:
        problem = lab.problem(net, Scenario(**params))
        shown = lab.solve(dataset=dataset, problem=problem, draws=0).summary.network_cost_after
        longer = plan(problem, time_limit=seconds).score.network_cost_after
        rows.append((shown, min(shown, longer)))
    return rows


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--network", choices=list(NETWORKS), default="sample")
    args.add_argument("--load", type=int, default=0, help="other sessions solving at the same time")
    args.add_argument("--presolve", action="store_true", help="solve the grid ahead (timed) before the moves")
    args.add_argument("--visited-only", action="store_true", help="presolve only the settings the grid moves visit")
    args.add_argument("--moves", type=int, default=10)
    args.add_argument("--fill-moves", type=int, default=5)
    args.add_argument("--budget-moves", type=int, default=5)
    args.add_argument("--best", type=int, default=0, help="settings whose best known plan is solved (120 s each)")
    opts = args.parse_args()
    url = prepare_store(opts.network)
    forget_plans(url)
    if opts.presolve:
        presolve(url, whole=not opts.visited_only, moves=opts.moves)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    others = [ctx.Process(target=other_session, args=(url, i, stop), daemon=True) for i in range(opts.load)]
    for p in others:
        p.start()
    try:
        moves = browser_moves(url, opts)
    finally:
        stop.set()
        for p in others:
            p.terminate()
    print(
        f"\nScenario lab in Chromium: {opts.network} network, {opts.load} other session(s) solving, "
        f"grid {'solved ahead' if opts.presolve else 'not solved ahead'}, wait shown 1 s"
    )
    print(
        f"{'moves':<28} {'n':>3} {'first med':>9} {'first p90':>9} {'final med':>9} {'final p90':>9} {'provisional':>11}"
    )
    for name, rows in moves.items():
        first, final = [m["first"] for m in rows], [m["final"] for m in rows]
        print(
            f"{name:<28} {len(rows):>3} {statistics.median(first):9.2f} {pct(first, 0.9):9.2f} "
            f"{statistics.median(final):9.2f} {pct(final, 0.9):9.2f} {sum(m['provisional'] for m in rows):>11}"
        )
    limit_kept = [m["first"] <= 1.1 * 1.0 for rows in moves.values() for m in rows]
    print(f"first plan within the 1 s wait + 10 %: {sum(limit_kept)} of {len(limit_kept)} moves")
    if opts.best:
        settings = [{"min_move_units": 10, "service_level": round(0.95 + 0.005 * (i + 1), 3)} for i in range(opts.best)]
        print(f"\nFinal plan against the best known (better of it and a 120 s solve), {len(settings)} settings:")
        for params, (shown, best) in zip(settings, best_known(url, settings, 120.0), strict=True):
            print(f"  {params}: lab {shown:,.0f}, best known {best:,.0f}, {shown / best - 1:+.2%}")


if __name__ == "__main__":
    main()
