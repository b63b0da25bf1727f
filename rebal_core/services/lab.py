"""The Scenario lab's use case: plan a network under a scenario the planner is still tuning.

Nothing is saved as a scenario here (saving goes through :mod:`rebal_core.services.workflow`), but
the same gate as every other planning path holds: critical signal findings that nobody overrode
block the plan (:func:`rebal_core.services.datasets.require_planning_allowed`).

**An answer at once, the best answer soon** (issue 24). The lab's plan is *reproducible*: defined by
counted work (the search's rounds, the MIP's nodes), never by the clock, so the same settings give
the same plan here, on the home page and when saved, under any load. Such a plan may take longer
than a meeting waits, so :func:`request` starts it in a background thread of this process (or joins
the one already running, or reads it from the store when any replica solved it before), and the page
waits for it at most its displayed limit (:func:`wait`). Until it is there the page shows a
provisional plan, labelled: the greedy rule's on the new settings as soon as it is made, or before
that the nearest scenario already solved on the same data (:func:`nearest`). Finished plans are
stored by a key naming the dataset version, the settings, the moves under way and the engine's
version (:func:`plan_key`), so another replica and the next meeting reuse them.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path

import ortools
import pandas as pd
from sqlalchemy import Engine

from rebal_core import __version__
from rebal_core.decisions.commitments import problem_with_moves
from rebal_core.decisions.explain import Plan, PlanSummary, plan_lines
from rebal_core.decisions.judge import evaluate
from rebal_core.decisions.positions import Network, site_summary
from rebal_core.decisions.problem import LINE_KEYS, PlanningProblem
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.method import Cancelled, plan
from rebal_core.decisions.what_if.uncertainty import bands, plan_positions, simulate
from rebal_core.execution.files import jsonable
from rebal_core.progress import Progress, quiet
from rebal_core.services.datasets import require_planning_allowed
from rebal_core.store import solved_plans
from rebal_core.store.database import adjustment_stamp
from rebal_core.store.tables import DatasetPublic, SolvedPlan

MC_DRAWS = 500  # demand draws behind the lab's uncertainty bands

FINAL, GREEDY, NEAREST = "final", "greedy", "nearest"  # what a shown plan is


def _engine_version() -> str:
    """The planning engine's version: Rebal's and OR-Tools' versions and a digest of the decision
    code, so a change to how plans are made never serves a plan made the old way."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1] / "decisions"
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"rebal {__version__}; ortools {ortools.__version__}; decisions {digest.hexdigest()[:12]}"


ENGINE_VERSION = _engine_version()


@dataclass
class LabPlan:
    """One lab plan, as the page shows it."""

    summary: PlanSummary  # Plan.summary()
    table: pd.DataFrame  # the plan's lines with their reasons
    sites_after: pd.DataFrame  # site statuses after the plan (the map)
    uncertainty: pd.DataFrame | None  # fill rate and lost sales bands over MC_DRAWS draws (None: draws=0)
    rule: PlanSummary | None = None  # the greedy rule's plan on the same problem (optimize only)
    kind: str = FINAL  # FINAL: the reproducible plan of these settings; GREEDY / NEAREST: provisional
    label: str = ""  # for a provisional plan: what it is, in words

    @property
    def provisional(self) -> bool:
        return self.kind != FINAL


def problem(network: Network, scenario: Scenario, moving: pd.DataFrame | tuple = ()) -> PlanningProblem:
    """The planning problem of ``scenario`` on ``network``, with ``moving`` (lines released by saved
    plans and not yet received: sku_id, from_site_id, to_site_id, qty) counted as in transit."""
    moves = moving if isinstance(moving, pd.DataFrame) else pd.DataFrame(list(moving), columns=LINE_KEYS + ["qty"])
    return problem_with_moves(network, scenario, moves)


def _lab_plan(result: Plan, problem: PlanningProblem, draws: int = 0) -> LabPlan:
    rule = result.rule_summary() if result.method == "optimize" else result.summary()
    uncertainty = bands(simulate(*plan_positions(result), draws=draws)) if draws else None
    return LabPlan(
        summary=result.summary(),
        table=result.table,
        sites_after=site_summary(result.score.positions_after, (problem.network or problem).sites),
        uncertainty=uncertainty,
        rule=rule,
    )


def solve(
    *,
    dataset: DatasetPublic,
    problem: PlanningProblem,
    method: str = "optimize",
    progress: Progress = quiet,
    draws: int = MC_DRAWS,
    cancel: threading.Event | None = None,
    rule: pd.DataFrame | None = None,
) -> LabPlan:
    """Plan ``problem`` (built on ``dataset``) with ``method``, reproducibly (counted work, no clock),
    and wait for it; refused with :class:`rebal_core.errors.PlanningBlocked` while the dataset's
    critical findings stand. Pages use :func:`request` and :func:`wait` instead, which keep the wait
    within the limit they show."""
    require_planning_allowed(dataset)
    result = plan(problem, method=method, progress=progress, cancel=cancel, reproducible=True, rule=rule)
    out = _lab_plan(result, problem, draws)
    if out.rule is None:  # a fill-rate target plans by bisection, without one rule's plan to show
        out.rule = plan(problem, method="greedy").summary()
    return out


def uncertainty(problem: PlanningProblem, table: pd.DataFrame, draws: int = MC_DRAWS) -> pd.DataFrame:
    """Fill rate and lost-sales bands over ``draws`` demand draws, without and with the plan whose lines
    are ``table`` (a :class:`LabPlan`'s): the same draws for both, so the difference is the plan's.
    Separate from :func:`solve` so a page computes it only when someone looks."""
    score = evaluate(problem, plan_lines(table))
    return bands(simulate(problem.positions, score.positions_after.iloc[: len(problem.positions)], draws=draws))


# ----------------------------------------------------------------------------- keys and the store


def _moves(moving: pd.DataFrame | tuple) -> list:
    rows = moving.itertuples(index=False, name=None) if isinstance(moving, pd.DataFrame) else moving
    return sorted([str(a), str(b), str(c), int(q)] for a, b, c, q in rows)


def plan_family(*, engine: Engine, dataset: DatasetPublic, moving: pd.DataFrame | tuple = ()) -> str:
    """Everything a lab plan depends on but its settings: the dataset as imported and its approved
    count adjustments (they change the on hand), the lines in transit, the engine's version."""
    stamp = adjustment_stamp(engine=engine, dataset_id=dataset.id)
    what = json.dumps(
        {"dataset": dataset.id, "imported": str(dataset.imported_at), "stamp": stamp, "moving": _moves(moving)},
        sort_keys=True,
    )
    return hashlib.sha256(f"{what}|{ENGINE_VERSION}".encode()).hexdigest()[:32]


_FLOAT_FIELDS = {f.name for f in fields(Scenario) if "float" in str(f.type)}


def settled(scenario: Scenario) -> Scenario:
    """``scenario`` as the lab keys, solves and saves it: its numbers as floats rounded to 9 decimals (a
    slider's 0.9450000000000001 is the 0.945 the grid solved ahead, and an integer slider's 90 days of
    excess cover is the default's 90.0: one key, one plan)."""
    values = {
        name: round(float(value), 9) if name in _FLOAT_FIELDS and value is not None else value
        for name, value in scenario.as_dict().items()
    }
    return Scenario.from_mapping(values)


def plan_key(family: str, scenario: Scenario) -> str:
    """The key of ``scenario``'s plan in ``family``: its settings, not its name."""
    values = settled(scenario).as_dict()
    values.pop("name")
    settings = json.dumps(jsonable(values), sort_keys=True, default=str)
    return hashlib.sha256(f"{family}|{settings}".encode()).hexdigest()[:40]


_MEMO: OrderedDict[str, LabPlan] = OrderedDict()  # parsed stored plans of this process (the store is the truth)
_MEMO_SIZE = 64
_memo_lock = threading.Lock()


def _frame(text: str) -> pd.DataFrame:
    """A stored table as it was: ids that look like numbers ("0012") or dates stay text."""
    return pd.read_json(io.StringIO(text), orient="split", dtype=False, convert_dates=False) if text else pd.DataFrame()


def _from_record(record: SolvedPlan) -> LabPlan:
    rule = json.loads(record.rule or "{}")
    return LabPlan(
        summary=PlanSummary.from_dict(json.loads(record.summary)),
        table=_frame(record.lines),
        sites_after=_frame(record.sites_after),
        uncertainty=None,
        rule=PlanSummary.from_dict(rule) if rule else None,
    )


def solved(*, engine: Engine, key: str) -> LabPlan | None:
    """The stored plan of ``key``, if any replica solved it."""
    with _memo_lock:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    record = solved_plans.get(engine=engine, key=key)
    if record is None:
        return None
    out = _from_record(record)
    _remember(key, out)
    return out


def _remember(key: str, value: LabPlan) -> None:
    with _memo_lock:
        _MEMO[key] = value
        _MEMO.move_to_end(key)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)


def store(
    *, engine: Engine, dataset: DatasetPublic, family: str, scenario: Scenario, value: LabPlan, seconds: float
) -> None:
    """Keep a finished reproducible plan for every replica and the next meeting."""
    key = plan_key(family, scenario)
    solved_plans.put(
        engine=engine,
        record=SolvedPlan(
            dataset_id=dataset.id,
            key=key,
            family=family,
            scenario=json.dumps(jsonable(scenario.as_dict()), default=str),
            summary=json.dumps(jsonable(value.summary.as_dict()), default=str),
            rule=json.dumps(jsonable(value.rule.as_dict()), default=str) if value.rule is not None else "{}",
            lines=value.table.to_json(orient="split", index=False, date_format="iso"),
            sites_after=value.sites_after.to_json(orient="split", index=False, date_format="iso"),
            solve_seconds=seconds,
            created_at=None,
        ),
    )
    _remember(key, replace(value, uncertainty=None))


_DISTANCE_SCALE = {  # a step of the lab's slider is about 0.01 of each: service level 0.005 -> 0.5
    "service_level": 100.0,
    "target_fill_rate": 100.0,
    "horizon_days": 1 / 7,
    "excess_cover_days": 1 / 30,
    "donor_reserve": 10.0,
    "shortage_cost_factor": 10.0,
    "excess_cost_rate": 50.0,
    "min_move_units": 0.1,
    "cost_per_move": 0.1,
    "max_lead_time_days": 0.5,
    "max_unit_cost_ratio": 20.0,
    "budget": 1e-4,
}


def _distance(a: dict, b: dict) -> float:
    """How far two settings are apart (in slider steps, roughly); infinite when their objective or
    scope differ (a plan for other positions is no answer). Both as :func:`jsonable` makes them."""
    for name in ("objective", "categories", "regions"):
        if (a.get(name) or None) != (b.get(name) or None):
            return float("inf")
    total = 0.0
    for name, scale in _DISTANCE_SCALE.items():
        x, y = a.get(name), b.get(name)
        if (x is None) != (y is None):
            total += 10.0
        elif x is not None:
            total += abs(float(x) - float(y)) * scale
    return total


def nearest(*, engine: Engine, family: str, scenario: Scenario) -> LabPlan | None:
    """The stored plan of the nearest settings solved on the same data (a provisional answer while
    these settings are solved), labelled with what differs; None when nothing near was solved."""
    wanted = jsonable(scenario.as_dict())
    candidates = [
        (_distance(wanted, settings), key, settings)
        for key, settings in solved_plans.settings_in(engine=engine, family=family)
    ]
    candidates = [c for c in candidates if c[0] < float("inf")]
    if not candidates:
        return None
    _, key, settings = min(candidates, key=lambda c: (c[0], c[1]))
    found = solved(engine=engine, key=key)
    if found is None:
        return None
    differs = [
        f"{name.replace('_', ' ')} {settings.get(name)}"
        for name in _DISTANCE_SCALE
        if settings.get(name) != wanted.get(name)
    ]
    label = "the plan of the nearest settings solved before (" + (", ".join(differs) or "same settings") + ")"
    return replace(found, kind=NEAREST, label=label)


# ----------------------------------------------------------------------------- solves in the background


class LabSolve:
    """One reproducible lab plan being made in a background thread of this process (or already made).

    ``provisional`` is the greedy rule's plan on the same settings as soon as it is made; ``result``
    the reproducible plan when done. Sessions that wait for it hold it (:func:`leave`); when the last
    one leaves before it is done, it stops, so quick slider moves do not pile solves up."""

    def __init__(self, key: str, family: str, scenario: Scenario) -> None:
        self.key = key
        self.family = family  # plan_family of the data it is solved on (where a nearest answer is looked up)
        self.scenario = scenario
        self.done = threading.Event()
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self.fraction, self.message = 0.0, "queued"
        self.provisional: LabPlan | None = None
        self.result: LabPlan | None = None
        self.error: BaseException | None = None
        self.watchers = 0

    def progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = float(fraction), message

    @property
    def stopped(self) -> bool:
        return self.done.is_set() and self.result is None and self.error is None

    def answer(self) -> LabPlan | None:
        """The best plan this solve has to show now: the final one, else the provisional one."""
        return self.result if self.result is not None else self.provisional


_RUNNING: dict[str, LabSolve] = {}
_running_lock = threading.Lock()


def request(
    *,
    engine: Engine,
    dataset: DatasetPublic,
    network: Network,
    scenario: Scenario,
    moving: pd.DataFrame | tuple = (),
) -> LabSolve:
    """The reproducible plan of ``scenario`` on this dataset: already done when any replica stored it,
    else the solve running for it in this process (joined) or a new one (started). The caller holds
    it until :func:`leave`. Refused with PlanningBlocked while critical findings stand."""
    require_planning_allowed(dataset)
    scenario = settled(scenario)  # the plan of a key is always made from the same numbers
    family = plan_family(engine=engine, dataset=dataset, moving=moving)
    key = plan_key(family, scenario)
    with _running_lock:
        running = _RUNNING.get(key)
        if running is not None and not running.cancel.is_set():
            running.watchers += 1
            return running
    known = solved(engine=engine, key=key)
    lab_solve = LabSolve(key, family, scenario)
    lab_solve.watchers = 1
    if known is not None:
        lab_solve.result = known
        lab_solve.progress(1.0, "solved before")
        lab_solve.done.set()
        return lab_solve
    with _running_lock:
        running = _RUNNING.get(key)
        if running is not None and not running.cancel.is_set():  # another session started it meanwhile
            running.watchers += 1
            return running
        _RUNNING[key] = lab_solve
    threading.Thread(
        target=_run,
        args=(lab_solve, engine, dataset, family, network, scenario, moving),
        name=f"rebal-lab-{key[:8]}",
        daemon=True,
    ).start()
    return lab_solve


def _run(
    lab_solve: LabSolve,
    engine: Engine,
    dataset: DatasetPublic,
    family: str,
    network: Network,
    scenario: Scenario,
    moving: pd.DataFrame | tuple,
) -> None:
    try:
        lab_solve.progress(0.01, "building the problem")
        built = problem(network, scenario, moving)
        lab_solve.progress(0.02, "the greedy rule's plan (shown until the optimizer's is ready)")
        rule = plan(built, method="greedy")
        lab_solve.provisional = replace(
            _lab_plan(rule, built),
            rule=rule.summary(),
            kind=GREEDY,
            label="the greedy rule's plan on these settings (largest shortage first, nearest donor)",
        )
        if lab_solve.cancel.is_set():
            raise Cancelled
        t0 = time.perf_counter()
        value = solve(
            dataset=dataset,
            problem=built,
            progress=lab_solve.progress,
            draws=0,
            cancel=lab_solve.cancel,
            rule=plan_lines(rule.table),
        )
        store(
            engine=engine,
            dataset=dataset,
            family=family,
            scenario=scenario,
            value=value,
            seconds=time.perf_counter() - t0,
        )
        lab_solve.result = value
        lab_solve.progress(1.0, "done")
    except Cancelled:
        lab_solve.progress(lab_solve.fraction, "stopped")
    except Exception as exc:  # noqa: BLE001 - the waiting page says why
        lab_solve.error = exc
    finally:
        lab_solve.done.set()
        with _running_lock:
            if _RUNNING.get(lab_solve.key) is lab_solve:
                del _RUNNING[lab_solve.key]


def wait(lab_solve: LabSolve, seconds: float, tick: Progress = quiet, until_provisional: bool = False) -> bool:
    """Wait at most ``seconds`` for the final plan (``until_provisional``: for any plan to show),
    calling ``tick(fraction, message)`` a few times a second (a page's progress bar: a new rerun
    request interrupts the wait there). True when there is what was waited for."""
    end = time.monotonic() + max(0.0, seconds)

    def ready() -> bool:
        return lab_solve.done.is_set() or (until_provisional and lab_solve.provisional is not None)

    while not ready():
        left = end - time.monotonic()
        if left <= 0:
            return False
        lab_solve.done.wait(min(0.1, left))
        tick(lab_solve.fraction, lab_solve.message)
    return lab_solve.result is not None or (until_provisional and lab_solve.provisional is not None)


def answer(*, engine: Engine, lab_solve: LabSolve, seconds: float, tick: Progress = quiet) -> LabPlan | None:
    """What to show for ``lab_solve`` after waiting at most ``seconds``: its final plan when ready, else a
    provisional one (the nearest settings solved before, else the greedy rule's as soon as it is made).
    None when it was stopped with nothing to show; its error when it failed."""
    if wait(lab_solve, seconds, tick):
        return lab_solve.result
    shown = lab_solve.provisional or nearest(engine=engine, family=lab_solve.family, scenario=lab_solve.scenario)
    if shown is None:  # nothing solved near yet: the greedy rule's plan comes first
        wait(lab_solve, float("inf"), tick, until_provisional=True)
        shown = lab_solve.answer()
    if lab_solve.error is not None:
        raise lab_solve.error
    return lab_solve.result or shown


def leave(lab_solve: LabSolve | None) -> None:
    """The caller no longer waits for ``lab_solve``: the last to leave stops it (nothing is stored)."""
    if lab_solve is None:
        return
    with _running_lock:
        lab_solve.watchers = max(0, lab_solve.watchers - 1)
        if lab_solve.watchers == 0 and not lab_solve.done.is_set():
            lab_solve.cancel.set()
            if _RUNNING.get(lab_solve.key) is lab_solve:
                del _RUNNING[lab_solve.key]


def stop(lab_solve: LabSolve | None) -> None:
    """Stop ``lab_solve`` now (the Stop button), whoever else waits for it."""
    if lab_solve is None:
        return
    with _running_lock:
        lab_solve.cancel.set()
        if _RUNNING.get(lab_solve.key) is lab_solve:
            del _RUNNING[lab_solve.key]
