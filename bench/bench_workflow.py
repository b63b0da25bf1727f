"""The approval workflow's costs (issue 4): re-plans around decisions, decisions, export, the trade-off sweep.

Baselines in the same run: a free plan of the same network and time limit
(what a re-plan around decisions adds), and one ``plan_network`` call per
sweep point (what the sweep adds around it).

* sample (in a throwaway SQLite store): save + solve, reject 10 % of the
  lines and firm 5 % (each decision re-scores the plan), re-solve around
  them, submit, two approvers approving at once, release + export, and the
  six-point service-level sweep at a 1 s limit per point;
* 50 x 5,000 (``synth``, trucks and lane caps): a free plan against a plan
  with 10 % of its lines kept (edited down a pack where possible) and 5 %
  forbidden, both with a 5 s limit.

    .venv/bin/python bench/bench_workflow.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _measure import network  # noqa: E402 - the bench's cached networks
from bench_plan import BENCH_DATA, ensure  # noqa: E402

from rebal_core import services, store  # noqa: E402
from rebal_core.decisions.planning import Commitments, plan_lines  # noqa: E402
from rebal_core.decisions.scenario import Scenario  # noqa: E402
from rebal_core.decisions.solvers.optimizer import plan_network  # noqa: E402
from rebal_core.decisions.what_if.compare import tradeoff  # noqa: E402
from rebal_core.governance.identity import Actor  # noqa: E402
from rebal_core.governance.policy import Policy, Thresholds  # noqa: E402
from rebal_core.services import accounts, workflow


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sample_workflow() -> None:
    sample = ensure(ROOT / "data" / "sample")
    net = network(str(sample), "as-is")
    with tempfile.TemporaryDirectory() as tmp:
        engine = store.make_engine(f"sqlite:///{tmp}/bench.db")
        workflow.ensure_governance(engine=engine)
        admin = Actor("cli:bench", "admin")
        for name, role in (("pat", "planner"), ("ann", "approver"), ("amy", "approver")):
            accounts.create_user(engine=engine, actor=admin, username=name, role=role, password=f"{name}-password-1")
        dataset = services.import_bundle(engine=engine, source=sample, name="Sample", actor=admin).dataset
        pat, ann, amy = Actor("pat", "planner"), Actor("ann", "approver"), Actor("amy", "approver")

        free, t_free = timed(lambda: plan_network(net, Scenario(), time_limit=5))
        record = workflow.save_scenario(
            engine=engine, actor=pat, dataset_id=dataset.id, scenario=Scenario(name="Base"), time_limit=5
        )
        record, t_solve = timed(
            lambda: workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id, network=net)
        )
        lines = workflow.lines(engine=engine, scenario_id=record.id)
        n = len(lines)
        rng = np.random.default_rng(1)
        order = rng.permutation(n)
        rejected = lines["transfer_id"].to_numpy()[order[: n // 10]].tolist()
        _, t_reject = timed(
            lambda: workflow.decide_lines(
                engine=engine,
                actor=pat,
                scenario_id=record.id,
                transfer_ids=rejected,
                action="reject",
                note="bench",
                network=net,
            )
        )
        firm_times = []
        for i in order[n // 10 : n // 10 + n // 20]:
            row = lines.iloc[i]
            pack = row["qty"] // row["packs"]
            qty = int(row["qty"] - pack) if row["packs"] > 1 else int(row["qty"])
            firm_times.append(
                timed(
                    lambda row=row, qty=qty: workflow.firm_line(
                        engine=engine,
                        actor=pat,
                        scenario_id=record.id,
                        transfer_id=row["transfer_id"],
                        qty=qty,
                        network=net,
                    )
                )[1]
            )
        record, t_resolve = timed(
            lambda: workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id, network=net)
        )
        workflow.set_policy(engine=engine, actor=admin, policy=Policy(default=Thresholds(0.0, 0.0)))
        workflow.transition(engine=engine, actor=pat, scenario_id=record.id, event="submit")
        ids = workflow.open_decisions(workflow.lines(engine=engine, scenario_id=record.id))["transfer_id"].tolist()

        def approvals() -> None:
            threads = [
                threading.Thread(
                    target=lambda a=a, part=part: [
                        workflow.decide_lines(
                            engine=engine, actor=a, scenario_id=record.id, transfer_ids=[t], action="approve"
                        )
                        for t in part
                    ]
                )
                for a, part in ((ann, ids[0::2]), (amy, ids[1::2]))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        _, t_approve = timed(approvals)
        workflow.transition(engine=engine, actor=ann, scenario_id=record.id, event="approve")
        orders, t_export = timed(lambda: workflow.export_orders(engine=engine, actor=pat, scenario_id=record.id))
        _, t_reexport = timed(lambda: workflow.export_orders(engine=engine, actor=pat, scenario_id=record.id))

        levels = np.linspace(0.90, 0.995, 6)
        per_point = [
            timed(lambda sl=sl: plan_network(net, Scenario(service_level=float(sl)), time_limit=1.0))[1]
            for sl in levels
        ]
        _, t_sweep = timed(lambda: tradeoff(net, Scenario(), levels, over="service_level", time_limit=1.0))

    print(f"sample ({len(net.sites)} sites x {len(net.skus)} skus), {n} lines")
    print(
        f"  baseline: plan_network alone, 5 s limit        {t_free:6.2f} s  (network cost {free.score.network_cost_after:,.0f})"
    )
    print(f"  save + solve (store writes, {n} lines)          {t_solve:6.2f} s")
    print(f"  reject {len(rejected)} lines in one call (re-scored)       {t_reject:6.2f} s")
    print(
        f"  firm one line (validated, re-scored), median    {statistics.median(firm_times):6.2f} s  ({len(firm_times)} edits)"
    )
    print(
        f"  re-solve around the decisions                   {t_resolve:6.2f} s  (network cost {workflow.summary(record).network_cost_after:,.0f})"
    )
    print(
        f"  two approvers at once, {len(ids)} single-line calls    {t_approve:6.2f} s  ({t_approve / max(1, len(ids)) * 1000:.0f} ms per decision)"
    )
    print(f"  approve + release + export {len(orders)} orders         {t_export:6.2f} s;  re-export {t_reexport:.2f} s")
    print(
        f"  sweep, 6 service levels at 1 s                  {t_sweep:6.2f} s  (baseline: the 6 solves alone {sum(per_point):.2f} s)"
    )


def medium_around() -> None:
    medium = ensure(BENCH_DATA / "medium", "--sites", "50", "--skus", "5000", "--days", "7", "--seed", "1")
    net = network(str(medium), "as-is")
    free, t_free = timed(lambda: plan_network(net, Scenario(), time_limit=5))
    lines = plan_lines(free.table)
    rng = np.random.default_rng(2)
    order = rng.permutation(len(lines))
    fixed = lines.iloc[order[: len(lines) // 10]]
    forbidden = lines.iloc[order[len(lines) // 10 : len(lines) // 10 + len(lines) // 20]]
    around, t_around = timed(
        lambda: plan_network(net, Scenario(), commitments=Commitments(fixed=fixed, forbidden=forbidden), time_limit=5)
    )
    print(f"50 x 5,000: {len(lines):,} lines in the free plan")
    print(
        f"  baseline: free plan, 5 s limit                 {t_free:6.2f} s  network cost {free.score.network_cost_after:,.0f}  gap {free.gap:.2%}"
    )
    print(
        f"  {len(fixed):,} kept + {len(forbidden):,} forbidden, 5 s limit   {t_around:6.2f} s  network cost {around.score.network_cost_after:,.0f}  gap {around.gap:.2%}"
    )


if __name__ == "__main__":
    sample_workflow()
    medium_around()
