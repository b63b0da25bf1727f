"""Command line: ``python -m rebal_core {validate,import,init,datasets,plan,synth,scenarios,autopilot,presolve,export,users,audit} ...``.

Exit codes: 0 success, 2 bad input (errors printed, never a traceback),
1 an unexpected failure (reported in one line).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rebal_core.errors import BundleInvalid
from rebal_core.progress import quiet
from rebal_core.services import REPEATED_SOLVE_SECONDS, SAVED_PLAN_SECONDS, SOLVE_SECONDS


def _progress_printer(label: str):
    """Progress lines on stderr, at most one per 2% step, so logs stay readable."""
    state = {"last": -1.0, "t0": time.perf_counter()}

    def show(fraction: float, message: str) -> None:
        if fraction - state["last"] >= 0.02 or fraction >= 1.0:
            state["last"] = fraction
            print(
                f"[{label} {fraction:4.0%} {time.perf_counter() - state['t0']:6.1f}s] {message}",
                file=sys.stderr,
                flush=True,
            )

    return show


def _print_signals(findings) -> None:
    """Critical and warning findings one per line (info only counted), so a log shows what to look at."""
    for r in findings[findings["severity"] != "info"].head(20).itertuples():
        where = " ".join(x for x in (r.site_id, r.sku_id, r.category) if x)
        print(f"signal {r.severity}: {r.check}{' at ' + where if where else ''}: {r.message}")
    rest = len(findings[findings["severity"] != "info"]) - 20
    if rest > 0:
        print(f"signal: {rest} more finding(s) (see the Data page)")
    info = int((findings["severity"] == "info").sum())
    if info:
        print(f"signal info: {info} finding(s) such as dead stock (see the Data page)")


def _progress(args: argparse.Namespace, label: str):
    """Progress lines unless ``--quiet``."""
    return quiet if args.quiet else _progress_printer(label)


def _bundle(path: str, show, outcome: str):
    """The validated bundle, or None after printing every error and ``outcome`` (what did not happen)."""
    from rebal_core.services import load_bundle

    try:
        return load_bundle(path, progress=show)
    except BundleInvalid as exc:
        _report_invalid(exc, outcome)
        return None


def _report_invalid(exc: BundleInvalid, outcome: str) -> None:
    print(exc.report())
    print(f"invalid: {len(exc.errors) + exc.more} error(s); {outcome}")


def cmd_validate(args: argparse.Namespace) -> int:
    from rebal_core.services import load_bundle

    try:
        bundle = load_bundle(args.bundle, progress=_progress_printer("validate") if not args.quiet else None)
    except BundleInvalid as exc:
        for w in exc.warnings:
            print(f"warning: {w}")
        print(exc.report())
        print(f"invalid: {len(exc.errors) + exc.more} error(s); nothing was loaded")
        return 2
    for w in bundle.warnings:
        print(f"warning: {w}")
    print(
        f"valid: {len(bundle.sites)} sites, {len(bundle.skus)} skus, {len(bundle.inventory)} inventory rows, "
        f"{len(bundle.demand)} demand rows; planning date {bundle.as_of}"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rebal_core import services

    engine = services.make_engine(args.database)
    name = args.name or Path(args.bundle).stem
    try:
        result = services.import_bundle(
            engine=engine, source=args.bundle, name=name, replace=args.replace, progress=_progress_printer("import")
        )
    except BundleInvalid as exc:
        print(exc.report())
        print(f"invalid: {len(exc.errors) + exc.more} error(s); nothing was stored")
        return 2
    except services.DatasetExists as exc:
        print(f"error: {exc} (use --replace)")
        return 2
    for w in result.warnings:
        print(f"warning: {w}")
    if result.deleted_plans:
        print(
            f"replaced: {len(result.deleted_plans)} saved plan(s) on the old dataset were deleted with it: "
            + ", ".join(repr(n) for n, _ in result.deleted_plans)
        )
    _print_signals(result.signals)
    d = result.dataset
    print(
        f"imported dataset {d.id} {d.name!r}: {d.sites} sites, {d.skus} skus, {d.positions} positions in {result.seconds:.1f}s"
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import workflow

    engine = services.make_engine(args.database)
    how = workflow.ensure_governance(engine=engine)
    if how:
        print(how)
    dataset = services.ensure_sample(engine=engine, progress=_progress_printer("first start"))
    if dataset is None:
        print(f"store ready at {services.database_url() if not args.database else args.database}")
    else:
        print(f"loaded the sample network as dataset {dataset.id} ({dataset.sites} sites, {dataset.skus} skus)")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from rebal_core import services

    engine = services.make_engine(args.database)
    for d in services.list_datasets(engine=engine):
        print(
            f"{d.id}\t{d.name}\t{d.as_of}\t{d.sites} sites\t{d.skus} skus\t{d.positions} positions\timported {d.imported_at}"
        )
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import datetime as dt

    from rebal_core.services import SynthConfig, synthesize

    cfg = SynthConfig(
        sites=args.sites, skus=args.skus, days=args.days, seed=args.seed, as_of=dt.date.fromisoformat(args.as_of)
    )
    t0 = time.perf_counter()
    out = synthesize(args.out, cfg, compress=args.gzip)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f}s")
    return 0


def _scenario(path: str | None, name: str | None = None):
    """The scenario of a TOML file (the spec's defaults without one); None after printing every problem."""
    from rebal_core.services import Scenario, ScenarioInvalid

    try:
        return Scenario.from_toml(path) if path else Scenario(**({"name": name} if name else {}))
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            print(f"scenario: {problem}")
        return None


def cmd_plan(args: argparse.Namespace) -> int:
    from rebal_core.services import PlanningBlocked, batch

    scenario = _scenario(args.scenario)
    if scenario is None:
        print("invalid scenario; no plan was made")
        return 2
    try:
        run = batch.plan_bundle(
            args.bundle,
            scenario,
            out=args.out,
            summary_path=args.summary,
            method=args.method,
            time_limit=args.time_limit,
            override_signals=args.override_signals,
            use_cache=not args.no_cache,
            progress=_progress(args, "plan"),
            ray=args.ray,
        )
    except BundleInvalid as exc:
        _report_invalid(exc, "no plan was made")
        return 2
    except PlanningBlocked as exc:
        _print_signals(exc.findings)
        print(str(exc))
        return 2
    if run.overridden is not None:
        print(
            f"warning: planning despite {len(run.overridden)} critical signal finding(s), overridden: {args.override_signals}",
            file=sys.stderr,
        )
    phases = run.phases
    s = run.plan.summary()
    print(s.describe())
    if s.nothing_pays:
        print(s.nothing_pays)
    if s.fill_rate_target is not None:
        met = "reached" if s.fill_rate_target_met else "NOT reached: the plan that comes closest"
        print(f"fill-rate target {s.fill_rate_target:.2%}: {met}")
    print(
        "time by phase: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        + f"; {sum(phases.values()):.2f} s in all"
    )
    return 0


def _cli_actor():
    """Who the command line acts as (services.CLI), imported late like the rest of the engine."""
    from rebal_core.services.datasets import CLI

    return CLI


def _dataset_id(engine, name: str | None) -> int | None:
    from rebal_core import services

    if name is None:
        return None
    found = services.find_dataset(engine=engine, name=name)
    if found is None and name.isdigit():
        found = services.get_dataset(engine=engine, dataset_id=int(name))
    if found is None:
        raise LookupError(f"no dataset named {name!r} (see `python -m rebal_core datasets`)")
    return found.id


def cmd_scenarios(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import workflow

    engine = services.make_engine(args.database)
    for s in workflow.list_scenarios(engine=engine, dataset_id=_dataset_id(engine, args.dataset)):
        k = workflow.summary(s)
        cost = f"network cost {k.network_cost_after:,.0f}" if k else "not solved"
        print(
            f"{s.id}\t{s.name}\tdataset {s.dataset_id}\t{s.status}\t{k.lines if k else 0} lines\t{cost}\tby {s.author}, {s.updated_at}"
        )
    return 0


def cmd_save_scenario(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import workflow

    engine = services.make_engine(args.database)
    params = _scenario(args.params, name=args.name)
    if params is None:
        print("invalid scenario; nothing was saved")
        return 2
    dataset_id = _dataset_id(engine, args.dataset) or services.list_datasets(engine=engine)[0].id
    record = workflow.save_scenario(
        engine=engine,
        actor=_cli_actor(),
        dataset_id=dataset_id,
        scenario=params,
        name=args.name,
        method=args.method,
        time_limit=args.time_limit,
    )
    print(f"saved scenario {record.id} {record.name!r} on dataset {dataset_id} (draft, not solved yet)")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import pandas as pd

    from rebal_core import services
    from rebal_core.services import Replay, backtest, to_csv_bytes, totals

    scenario = _scenario(args.scenario)
    if scenario is None:
        return 2
    show = _progress(args, "backtest")
    bundle = _bundle(args.bundle, show, "nothing was replayed")
    if bundle is None:
        return 2
    history = (bundle.demand["date"].max() - bundle.demand["date"].min()).days + 1
    if args.days + args.lookback > history:
        print(
            f"error: replaying {args.days} days with a {args.lookback}-day lookback needs {args.days + args.lookback} days of history; the bundle has {history}"
        )
        return 2
    net = services.network_from_bundle(bundle, progress=show)
    replay = Replay(
        days=args.days,
        every=args.every,
        lookback=args.lookback,
        supply_lead=args.supply_lead,
        replenish=not args.no_replenishment,
        time_limit=args.time_limit,
    )
    periods = backtest(net, bundle.demand, scenario, replay, progress=show)
    if args.out:
        Path(args.out).write_bytes(to_csv_bytes(periods))
    for r in totals(periods).itertuples():
        gain = f", realised net vs none {r.realised_net:,.0f}" if hasattr(r, "realised_net") else ""
        if r.arm in ("greedy", "optimize") and hasattr(r, "promised_net"):
            gain += f" (promised {r.promised_net:,.0f})"
        if r.arm != "none" and hasattr(r, "share_of_hindsight") and r.share_of_hindsight == r.share_of_hindsight:
            gain += f", {r.share_of_hindsight:.0%} of hindsight"
        if r.arm == "optimize" and pd.notna(getattr(r, "inside_80", None)):
            gain += f"; forecast intervals held {r.inside_80:.0%} (80 %) and {r.inside_95:.0%} (95 %) of actual demand"
        print(
            f"{r.arm:<9} fill rate {r.fill_rate:.2%}  lost {r.lost_units:,.0f} units ({r.lost_value:,.0f})  transfer spend {r.transfer_spend:,.0f}  "
            f"moved {r.units_moved:,.0f} units  mean excess value {r.excess_value:,.0f}{gain}"
        )
    return 0


def cmd_autopilot(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import presolve, workflow

    engine = services.make_engine(args.database)
    workflow.ensure_governance(engine=engine)
    report = workflow.autopilot(
        engine=engine,
        scenario_name=args.scenario,
        dataset_id=_dataset_id(engine, args.dataset),
        time_limit=args.time_limit,
        progress=_progress(args, "autopilot"),
    )
    for m in report.messages:
        print(m)
    if args.out:
        orders = workflow.transfer_orders(engine=engine, scenario_id=report.scenario.id)
        _write_orders(orders, args.out)
        print(f"wrote {len(orders)} released transfer order(s) to {args.out}")
    print(f"scenario {report.scenario.id} {report.scenario.name!r}: {report.scenario.status}")
    grid = presolve.submit(engine=engine, dataset_id=report.scenario.dataset_id)  # the next meeting's grid
    if grid is not None:
        print(f"solving the lab's scenario grid in the background: job {grid.id} ({grid.status})")
    return 0


def cmd_presolve(args: argparse.Namespace) -> int:
    """The lab's scenario grid solved now (or, with --background, as a job), for the next meeting."""
    from rebal_core import services
    from rebal_core.services import presolve

    engine = services.make_engine(args.database)
    dataset_id = _dataset_id(engine, args.dataset)
    if dataset_id is None:
        datasets = services.list_datasets(engine=engine)  # the most recent import first
        if not datasets:
            raise LookupError("no dataset in the store: import one first (`python -m rebal_core import`)")
        dataset_id = datasets[0].id
    if args.background:
        grid = presolve.submit(engine=engine, dataset_id=dataset_id)
        print("presolving is off (REBAL_PRESOLVE=0)" if grid is None else f"job {grid.id}: {grid.status}")
        return 0
    done = presolve.solve_grid(engine=engine, dataset_id=dataset_id, progress=_progress(args, "presolve"))
    print(
        f"{done['scenarios']} scenarios ready: {done['solved']} solved now in {done['seconds']:.1f} s "
        f"(slowest {done['slowest']:.1f} s), {done['already_solved']} solved before"
    )
    return 0


def _write_orders(orders, out: str) -> None:
    from rebal_core.services import to_csv_bytes, to_xlsx_bytes

    Path(out).write_bytes(to_xlsx_bytes(orders) if out.lower().endswith(".xlsx") else to_csv_bytes(orders))


def cmd_export(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import workflow

    engine = services.make_engine(args.database)
    record = workflow.find_scenario(engine=engine, name=args.scenario, dataset_id=_dataset_id(engine, args.dataset))
    if record is None:
        print(f"error: no saved scenario named {args.scenario!r} (see `python -m rebal_core scenarios`)")
        return 2
    orders = workflow.export_orders(
        engine=engine, actor=_cli_actor(), scenario_id=record.id, file_format=Path(args.out).suffix.lstrip(".") or "csv"
    )
    _write_orders(orders, args.out)
    print(
        f"wrote {len(orders)} transfer order(s) of {record.name!r} ({workflow.get_scenario(engine=engine, scenario_id=record.id).status}) to {args.out}"
    )
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from rebal_core import services
    from rebal_core.services import accounts

    engine = services.make_engine(args.database)
    actor = _cli_actor()
    if args.action == "list":
        for u in accounts.list_users(engine=engine):
            print(f"{u.username}\t{u.role}\t{'active' if u.active else 'locked'}\t{u.email or ''}")
        return 0
    if not args.username:
        print("error: give a user name")
        return 2
    if args.action in ("add", "password"):
        password = os.environ.get("REBAL_NEW_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
        if args.action == "add":
            accounts.create_user(
                engine=engine,
                actor=actor,
                username=args.username,
                role=args.role or "viewer",
                password=password,
                email=args.email,
            )
        else:
            accounts.set_password(engine=engine, actor=actor, username=args.username, password=password)
    else:
        accounts.update_user(
            engine=engine,
            actor=actor,
            username=args.username,
            role=args.role,
            active={"lock": False, "unlock": True}.get(args.action),
        )
    print(f"{args.action}: {args.username} done")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import audit_trail, to_csv_bytes

    engine = services.make_engine(args.database)
    frame = audit_trail.events(engine=engine, username=args.user, actions=args.action, limit=args.limit)
    if args.out:
        Path(args.out).write_bytes(to_csv_bytes(frame))
        print(f"wrote {len(frame)} event(s) to {args.out}")
    else:
        for r in frame.itertuples():
            print(f"{r.at}\t{r.username}\t{r.action}\t{r.summary}")
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("expected a number of seconds > 0")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a whole number >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rebal_core", description="Rebal: multi-location inventory rebalancing")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a bundle against the data contract")
    v.add_argument("bundle")
    v.add_argument("--quiet", action="store_true", help="no progress lines")
    v.set_defaults(run=cmd_validate)
    i = sub.add_parser("import", help="validate, forecast and store a bundle as a named dataset")
    i.add_argument("bundle")
    i.add_argument("--name", help="dataset name (default: the bundle's file name)")
    i.add_argument("--replace", action="store_true", help="replace a dataset of the same name")
    i.add_argument("--database", help="SQLAlchemy URL (default: REBAL_DATABASE_URL or data/rebal.db)")
    i.set_defaults(run=cmd_import)
    n = sub.add_parser("init", help="create the store; load the sample network when it is empty")
    n.add_argument("--database")
    n.set_defaults(run=cmd_init)
    d = sub.add_parser("datasets", help="list stored datasets")
    d.add_argument("--database")
    d.set_defaults(run=cmd_datasets)
    pl = sub.add_parser("plan", help="optimize transfers for a bundle; write PLAN.csv and SUMMARY.json")
    pl.add_argument("bundle")
    pl.add_argument("--scenario", help="scenario TOML file (default: the spec's defaults)")
    pl.add_argument("--out", required=True, help="PLAN.csv to write")
    pl.add_argument("--summary", help="SUMMARY.json to write")
    pl.add_argument(
        "--method",
        choices=["optimize", "greedy"],
        default="optimize",
        help="optimize (default) or the rules-based greedy baseline",
    )
    pl.add_argument(
        "--time-limit",
        type=_seconds,
        default=SOLVE_SECONDS,
        help=f"seconds the optimizer may take (default {SOLVE_SECONDS:g})",
    )
    pl.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the optimizer's per-sku flows on a Ray cluster (an address, or 'local'; default REBAL_RAY_ADDRESS, "
        "else in this process); needs requirements-ray.txt",
    )
    pl.add_argument("--quiet", action="store_true", help="no progress lines")
    pl.add_argument(
        "--no-cache",
        action="store_true",
        help="prepare the bundle afresh (by default a bundle whose files have not changed is taken from REBAL_CACHE_DIR or ~/.cache/rebal)",
    )
    pl.add_argument(
        "--override-signals",
        metavar="REASON",
        help="plan despite critical signal findings (stale or future-dated data), saying why",
    )
    pl.set_defaults(run=cmd_plan)
    s = sub.add_parser("synth", help="generate a realistic network bundle")
    s.add_argument("out")
    s.add_argument("--sites", type=_positive, default=32)
    s.add_argument("--skus", type=_positive, default=320)
    s.add_argument("--days", type=_positive, default=455)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--as-of", default="2026-11-16")
    s.add_argument("--gzip", action="store_true", help="write .csv.gz tables")
    s.set_defaults(run=cmd_synth)
    sc = sub.add_parser("scenarios", help="list saved scenarios and their plan status")
    sc.add_argument("--dataset", help="only this dataset (name or id)")
    sc.add_argument("--database")
    sc.set_defaults(run=cmd_scenarios)
    bt = sub.add_parser(
        "backtest",
        help="replay history: rebalancing (optimizer, greedy rule, hindsight) against none, same replenishment in every arm; promised against realised",
    )
    bt.add_argument("bundle")
    bt.add_argument("--scenario", help="scenario TOML file")
    bt.add_argument(
        "--days",
        type=_positive,
        default=364,
        help="days replayed, ending the day before the planning date (default 364)",
    )
    bt.add_argument("--every", type=_positive, default=7, help="plan every N days (default 7)")
    bt.add_argument("--lookback", type=_positive, default=56, help="days of history behind each forecast (default 56)")
    bt.add_argument(
        "--supply-lead",
        type=_positive,
        default=14,
        help="supplier lead time of the replenishment orders, days (default 14)",
    )
    bt.add_argument("--no-replenishment", action="store_true", help="no supplier orders: stock only moves by transfers")
    bt.add_argument(
        "--time-limit",
        type=_seconds,
        default=REPEATED_SOLVE_SECONDS,
        help=f"optimizer seconds per planning day (default {REPEATED_SOLVE_SECONDS:g})",
    )
    bt.add_argument("--out", help="CSV of every arm and period")
    bt.add_argument("--quiet", action="store_true")
    bt.set_defaults(run=cmd_backtest)
    ss = sub.add_parser(
        "save-scenario",
        help="save a scenario (parameters from a TOML file, else the spec's defaults) for the app and the autopilot",
    )
    ss.add_argument("name")
    ss.add_argument("--params", help="scenario TOML file")
    ss.add_argument("--dataset", help="dataset name or id (default: the most recent)")
    ss.add_argument("--method", choices=["optimize", "greedy"], default="optimize")
    ss.add_argument("--time-limit", type=_seconds, default=SAVED_PLAN_SECONDS)
    ss.add_argument("--database")
    ss.set_defaults(run=cmd_save_scenario)
    ap = sub.add_parser(
        "autopilot", help="nightly: plan with a saved scenario, approve under the policy, release; safe to run twice"
    )
    ap.add_argument("--scenario", required=True, help="name of a saved scenario whose parameters to use")
    ap.add_argument("--dataset", help="dataset to plan (name or id; default: the most recent)")
    ap.add_argument("--time-limit", type=_seconds, help="seconds for the optimizer (default: the scenario's)")
    ap.add_argument("--out", help="also write the released transfer orders (.csv or .xlsx)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--database")
    ap.set_defaults(run=cmd_autopilot)
    ps = sub.add_parser(
        "presolve", help="solve the Scenario lab's grid of settings ahead of a meeting (nightly, after an import)"
    )
    ps.add_argument("--dataset", help="dataset name or id (default: the most recent)")
    ps.add_argument("--background", action="store_true", help="start it as a job and return")
    ps.add_argument("--quiet", action="store_true")
    ps.add_argument("--database")
    ps.set_defaults(run=cmd_presolve)
    ex = sub.add_parser(
        "export", help="release an approved plan (once) and write its transfer orders; re-export gives the same orders"
    )
    ex.add_argument("--scenario", required=True, help="saved scenario name")
    ex.add_argument("--dataset", help="dataset name or id, when several have a scenario of that name")
    ex.add_argument("--out", required=True, help="file to write: .csv (UTF-8 with BOM) or .xlsx")
    ex.add_argument("--database")
    ex.set_defaults(run=cmd_export)
    us = sub.add_parser(
        "users",
        help="local accounts: list, add, password, role, lock, unlock (password from REBAL_NEW_PASSWORD or a prompt)",
    )
    us.add_argument("action", choices=["list", "add", "password", "role", "lock", "unlock"])
    us.add_argument("username", nargs="?")
    us.add_argument("--role", choices=["viewer", "planner", "approver", "admin"])
    us.add_argument("--email")
    us.add_argument("--database")
    us.set_defaults(run=cmd_users)
    au = sub.add_parser("audit", help="print or export the audit log")
    au.add_argument("--user")
    au.add_argument("--action", action="append", help="only these actions (repeatable)")
    au.add_argument("--limit", type=_positive)
    au.add_argument("--out", help="write CSV here instead of printing")
    au.add_argument("--database")
    au.set_defaults(run=cmd_audit)
    jb = sub.add_parser("job", help="run or show a job (a long backtest started from the app runs this way)")
    jb.add_argument("action", choices=["run", "show"])
    jb.add_argument("job_id", type=int)
    jb.add_argument("--database")
    jb.set_defaults(run=cmd_job)
    return p


def cmd_job(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.services import jobs

    engine = services.make_engine(args.database)
    view = (
        jobs.run(engine=engine, job_id=args.job_id)
        if args.action == "run"
        else jobs.job(engine=engine, job_id=args.job_id)
    )
    if view is None:
        print(f"no job with id {args.job_id}")
        return 2
    print(f"job {view.id}: {view.status} ({view.progress:.0%}) {view.message}")
    return 0 if view.status in ("done", "queued", "running") else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from rebal_core.services import when_busy

    try:
        return when_busy(lambda: args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # imported here, not at the top: `plan` should not pay for the store and the workflow
        from rebal_core.errors import REFUSALS

        if isinstance(exc, (*REFUSALS, LookupError)):  # bad requests: say what is wrong, exit 2
            print(f"error: {exc}")
            return 2
        print(
            f"error: {type(exc).__name__}: {exc}", file=sys.stderr
        )  # last line of defence: one readable line, no traceback
        return 1
