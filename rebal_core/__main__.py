"""Command line: ``python -m rebal_core {validate,import,init,datasets,plan,synth} ...``.

Exit codes: 0 success, 2 bad input (errors printed, never a traceback),
1 an unexpected failure (reported in one line).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rebal_core.bundle import BundleInvalid, load_bundle


def _progress_printer(label: str):
    """Progress lines on stderr, at most one per 2% step, so logs stay readable."""
    state = {"last": -1.0, "t0": time.perf_counter()}

    def show(fraction: float, message: str) -> None:
        if fraction - state["last"] >= 0.02 or fraction >= 1.0:
            state["last"] = fraction
            print(f"[{label} {fraction:4.0%} {time.perf_counter() - state['t0']:6.1f}s] {message}", file=sys.stderr, flush=True)

    return show


def cmd_validate(args: argparse.Namespace) -> int:
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
    from rebal_core import services, store

    engine = store.make_engine(args.database)
    name = args.name or Path(args.bundle).stem
    try:
        result = services.import_bundle(engine=engine, source=args.bundle, name=name, replace=args.replace, progress=_progress_printer("import"))
    except BundleInvalid as exc:
        print(exc.report())
        print(f"invalid: {len(exc.errors) + exc.more} error(s); nothing was stored")
        return 2
    except store.DatasetExists as exc:
        print(f"error: {exc} (use --replace)")
        return 2
    for w in result.warnings:
        print(f"warning: {w}")
    d = result.dataset
    print(f"imported dataset {d.id} {d.name!r}: {d.sites} sites, {d.skus} skus, {d.positions} positions in {result.seconds:.1f}s")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from rebal_core import services, store

    engine = store.make_engine(args.database)
    dataset = services.ensure_sample(engine=engine, progress=_progress_printer("first start"))
    if dataset is None:
        print(f"store ready at {store.database_url() if not args.database else args.database}")
    else:
        print(f"loaded the sample network as dataset {dataset.id} ({dataset.sites} sites, {dataset.skus} skus)")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from rebal_core import store

    engine = store.make_engine(args.database)
    for d in store.list_datasets(engine=engine):
        print(f"{d.id}\t{d.name}\t{d.as_of}\t{d.sites} sites\t{d.skus} skus\t{d.positions} positions\timported {d.imported_at}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import datetime as dt

    from rebal_core.synth import SynthConfig, synthesize

    cfg = SynthConfig(sites=args.sites, skus=args.skus, days=args.days, seed=args.seed, as_of=dt.date.fromisoformat(args.as_of))
    t0 = time.perf_counter()
    out = synthesize(args.out, cfg, compress=args.gzip)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from rebal_core import services
    from rebal_core.export import write_plan
    from rebal_core.optimizer import plan
    from rebal_core.planning import build_problem
    from rebal_core.scenario import Scenario, ScenarioInvalid

    try:
        scenario = Scenario.from_toml(args.scenario) if args.scenario else Scenario()
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            print(f"scenario: {problem}")
        print("invalid scenario; no plan was made")
        return 2
    show = _progress_printer("plan") if not args.quiet else (lambda f, m: None)
    try:
        bundle = load_bundle(args.bundle, progress=show)
    except BundleInvalid as exc:
        print(exc.report())
        print(f"invalid: {len(exc.errors) + exc.more} error(s); no plan was made")
        return 2
    t0 = time.perf_counter()
    net = services.network_from_bundle(bundle, progress=show)
    problem = build_problem(net, scenario)
    result = plan(problem, method=args.method, time_limit=args.time_limit, progress=show, build_seconds=time.perf_counter() - t0)
    write_plan(result, args.out, args.summary)
    s = result.summary()
    print(
        f"{s['lines']} lines, {s['units_moved']:,} units; network cost {s['network_cost_before']:,.2f} -> {s['network_cost_after']:,.2f} "
        f"(transfer {s['transfer_cost']:,.2f}); {s['solver_status']}, "
        + (f"gap {s['gap']:.4%}" if s["gap"] == s["gap"] else "no bound (greedy rule)")
        + f", solved in {s['solve_seconds']:.1f}s"
    )
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
    pl.add_argument("--method", choices=["optimize", "greedy"], default="optimize", help="optimize (default) or the rules-based greedy baseline")
    pl.add_argument("--time-limit", type=_seconds, default=60.0, help="seconds the optimizer may take (default 60)")
    pl.add_argument("--quiet", action="store_true", help="no progress lines")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last line of defence: one readable line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
