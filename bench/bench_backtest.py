"""Does it pay? The sample's backtest (issue 10 targets) and its speed; the Monte Carlo check.

A year of weekly replays, arms none, greedy, optimizer and hindsight, 1 s per solve.
Targets: the optimizer's realised net >= 0 and >= the greedy rule's, >= 50 % of
hindsight's, promised within +-25 % of realised in total. Speed baselines in the same
run: the ``none`` arm alone and one optimizer solve at the same limit, times the planning days.

    .venv/bin/python bench/bench_backtest.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _measure import network  # noqa: E402
from bench_plan import ensure  # noqa: E402

from rebal_core.decisions.scenario import Scenario  # noqa: E402
from rebal_core.decisions.solvers.optimizer import plan_network  # noqa: E402
from rebal_core.decisions.what_if.backtest import Replay, backtest, totals  # noqa: E402
from rebal_core.decisions.what_if.uncertainty import plan_positions, simulate  # noqa: E402
from rebal_core.signals.bundle import load_bundle  # noqa: E402


def main() -> None:
    sample = ensure(ROOT / "data" / "sample")
    net = network(str(sample), "as-is")
    demand = load_bundle(sample).demand
    replay = Replay(days=364, every=7, time_limit=1.0)
    t0 = time.perf_counter()
    backtest(net, demand, Scenario(), replay, arms=("none",))
    t_none = time.perf_counter() - t0
    t0 = time.perf_counter()
    periods = backtest(net, demand, Scenario(), replay)
    t_all = time.perf_counter() - t0
    t0 = time.perf_counter()
    one = plan_network(net, Scenario(), time_limit=1.0)
    t_solve = time.perf_counter() - t0
    print(
        f"sample backtest, 364 days weekly, 4 arms, 1 s per solve: {t_all:6.1f} s   (the none arm alone {t_none:.1f} s; one solve {t_solve:.2f} s x 52 = {t_solve * 52:.0f} s)"
    )
    t = totals(periods).set_index("arm")
    print(t.to_string())
    opt, rule = t.loc["optimize"], t.loc["greedy"]
    checks = {
        "realised net >= 0": opt["realised_net"] >= 0,
        "realised net >= greedy rule's": opt["realised_net"] >= rule["realised_net"],
        ">= 50 % of hindsight": opt["share_of_hindsight"] >= 0.5,
        "promised within +-25 % of realised": abs(opt["promised_net"] - opt["realised_net"])
        <= 0.25 * abs(opt["realised_net"]),
    }
    print(
        f"optimizer: realised {opt['realised_net']:,.0f}, promised {opt['promised_net']:,.0f}, {opt['share_of_hindsight']:.0%} of hindsight "
        f"(greedy rule: realised {rule['realised_net']:,.0f}, promised {rule['promised_net']:,.0f})"
    )
    for name, ok in checks.items():
        print(f"  {name}: {'OK' if ok else 'MISSED'}")
    before, after = plan_positions(one)
    t0 = time.perf_counter()
    simulate(before, after, draws=1000)
    print(f"Monte Carlo, {len(before):,} positions x 1,000 draws: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
