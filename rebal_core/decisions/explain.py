"""What a plan says to people: its lines with reasons (the planner's words), its summary
(``PlanSummary``), and "no transfer pays today" with the closest candidate.

Part of :mod:`rebal_core.decisions.planning` (which names them all)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from rebal_core.decisions.judge import Score, transfer_id
from rebal_core.decisions.positions import (
    is_expected,
    project,
)
from rebal_core.decisions.problem import LINE_KEYS, PlanningProblem, position_cost, trucks_for
from rebal_core.format import money_whole


@dataclass
class Plan:
    """A scored, explained plan with how it was found."""

    problem: PlanningProblem
    score: Score
    table: pd.DataFrame
    method: str
    solver_status: str
    lower_bound: float
    build_seconds: float
    solve_seconds: float
    stats: dict = field(default_factory=dict)
    rule_score: Score | None = None  # the greedy rule's plan the optimizer started from (compared side by side)

    def rule_summary(self) -> PlanSummary | None:
        """The greedy rule's plan on the same problem, summarised (None when the method made none)."""
        if self.rule_score is None:
            return None
        rule = Plan(self.problem, self.rule_score, self.table.iloc[:0], "greedy", "HEURISTIC", float("nan"), 0.0, 0.0)
        return rule.summary()

    @property
    def gap(self) -> float:
        """``(network_cost_after - lower_bound) / network_cost_after`` (0 when both are 0)."""
        after = self.score.network_cost_after
        if not np.isfinite(self.lower_bound):
            return float("nan")
        return max(0.0, (after - self.lower_bound) / after) if after > 0 else 0.0

    def summary(self) -> PlanSummary:
        """What the plan does, in the spec's terms (SUMMARY.json is its ``as_dict``)."""
        b, a = self.score.before, self.score.after
        return PlanSummary(
            scenario=self.problem.scenario.as_dict(),
            method=self.method,
            network_cost_before=b["network_cost"],
            network_cost_after=a["network_cost"],
            net_benefit=a["net_benefit"],
            transfer_cost=a["transfer_cost"],
            truck_cost=self.score.truck_cost,
            shortage_cost_before=b["shortage_cost"],
            shortage_cost_after=a["shortage_cost"],
            excess_cost_before=b["excess_cost"],
            excess_cost_after=a["excess_cost"],
            fill_rate_before=b["fill_rate"],
            fill_rate_after=a["fill_rate"],
            lines=a["lines"],
            units_moved=a["units_moved"],
            trucks=self.score.trucks,
            lanes_used=a["lanes_used"],
            objective=self.problem.scenario.objective,
            expected_lost_units_before=b["expected_lost_units"],
            expected_lost_units_after=a["expected_lost_units"],
            expected_lost_value_before=b["expected_lost_value"],
            expected_lost_value_after=a["expected_lost_value"],
            nothing_pays=nothing_pays_message(self.problem) if a["lines"] == 0 else None,
            solver_status=self.solver_status,
            lower_bound=self.lower_bound,
            gap=self.gap,
            build_seconds=self.build_seconds,
            solve_seconds=self.solve_seconds,
            fill_rate_target=self.stats.get("fill_rate_target"),
            fill_rate_target_met=self.stats.get("fill_rate_met"),
            kept_greedy_plan=bool(self.stats.get("kept_greedy", False)),
            kpis_before=b,
            kpis_after=a,
        )


@dataclass(frozen=True)
class PlanSummary:
    """What a plan does, in the spec's terms: network cost before and after (transfer + shortage +
    excess), fill rate, lines, units, trucks, the solver's status and proven bound. Checks itself
    (a plan's cost is never below its bound, counts are never negative). Stored as JSON with the
    saved plan (``as_dict`` / ``from_dict``); a re-scored plan also keeps what was solved."""

    scenario: dict
    method: str
    network_cost_before: float
    network_cost_after: float
    net_benefit: float
    transfer_cost: float
    truck_cost: float
    shortage_cost_before: float
    shortage_cost_after: float
    excess_cost_before: float
    excess_cost_after: float
    fill_rate_before: float
    fill_rate_after: float
    lines: int
    units_moved: int
    trucks: dict
    lanes_used: int
    objective: str
    expected_lost_units_before: float
    expected_lost_units_after: float
    expected_lost_value_before: float
    expected_lost_value_after: float
    nothing_pays: str | None
    solver_status: str
    lower_bound: float
    gap: float
    build_seconds: float
    solve_seconds: float
    fill_rate_target: float | None
    fill_rate_target_met: bool | None
    kept_greedy_plan: bool
    kpis_before: dict
    kpis_after: dict
    # a saved plan re-scored after decisions: what the solver made of it, and its lines as solved
    edited: bool = False
    solved: dict | None = None
    result: list = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = [f"{name} is negative" for name in ("lines", "units_moved", "lanes_used") if getattr(self, name) < 0]
        if self.lower_bound == self.lower_bound and self.lower_bound > self.network_cost_after + 1e-6 * max(
            1.0, abs(self.network_cost_after)
        ):
            problems.append(f"lower bound {self.lower_bound:,.2f} above the plan's cost {self.network_cost_after:,.2f}")
        if problems:
            raise ValueError("inconsistent plan summary: " + "; ".join(problems))

    def cost(self) -> float:
        """The plan's network cost (transfer + shortage + excess after it)."""
        return self.network_cost_after

    def is_feasible(self) -> bool:
        """Whether the plan keeps every rule (plans the optimizer or greedy rule make always do; an
        edited plan's broken rules are refused before it is stored)."""
        return self.solver_status != "INFEASIBLE"

    def describe(self) -> str:
        """One line for people: lines, units, cost before -> after, status and gap."""
        bound = f"gap {self.gap:.4%}" if self.gap == self.gap else "no bound (greedy rule)"
        return (
            f"{self.lines} lines, {self.units_moved:,} units; network cost {self.network_cost_before:,.2f} -> "
            f"{self.network_cost_after:,.2f} (transfer {self.transfer_cost:,.2f}); {self.solver_status}, {bound}, "
            f"solved in {self.solve_seconds:.1f}s"
        )

    def as_dict(self) -> dict:
        out = asdict(self)
        if not self.edited:
            for key in ("edited", "solved", "result"):
                out.pop(key)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> PlanSummary:
        """A stored summary (fields added later default; fields no longer known are ignored)."""
        known = {f.name for f in fields(cls)}
        if "trucks_by_lane" in raw and "trucks" not in raw:  # the name a saved plan keeps them under
            raw = {**raw, "trucks": raw["trucks_by_lane"]}
        defaults = {"truck_cost": 0.0, "trucks": {}, "lanes_used": 0, "objective": "target", "nothing_pays": None,
                    "fill_rate_target": None, "fill_rate_target_met": None, "kept_greedy_plan": False,
                    "build_seconds": 0.0, "kpis_before": {}, "kpis_after": {}, "method": "optimize", "scenario": {}}  # fmt: skip
        for key in ("expected_lost_units_before", "expected_lost_units_after", "expected_lost_value_before", "expected_lost_value_after"):  # fmt: skip
            defaults[key] = float("nan")
        values = {**defaults, **{k: v for k, v in raw.items() if k in known}}
        for key in ("lower_bound", "gap"):  # NaN is stored as null (JSON has no NaN)
            if values.get(key) is None:
                values[key] = float("nan")
        return cls(**values)


PLAN_COLUMNS = [
    "transfer_id", "sku_id", "sku_name", "category", "from_site_id", "from_site", "to_site_id", "to_site",
    "qty", "packs", "lead_time_days", "cost_per_unit", "line_cost", "truck_share", "shortage_avoided",
    "excess_avoided", "days_until_stockout", "reason",
]  # fmt: skip


_money = money_whole


def _expected_reason(
    to_name: str,
    from_name: str,
    qty: float,
    horizon: float,
    lost_before: float,
    lost_after: float,
    shortage_avoided: float,
    excess_avoided: float,
    donor_more: float,
    cost: float,
) -> str:
    """One line's reason under the expected objective, in a planner's words."""
    if lost_before >= 0.5:
        need = f"{to_name} expected to lose {lost_before:,.0f} sales in the next {horizon:,.0f} days; {qty:,.0f} units from {from_name} cut that to {lost_after:,.0f}"
    else:
        need = f"{to_name} has room for {qty:,.0f} units from {from_name}"
    worth = []
    if shortage_avoided > 0.5:
        worth.append(f"{_money(shortage_avoided)} of lost margin")
    if excess_avoided > 0.5:
        worth.append(f"{_money(excess_avoided)} of excess at {from_name}")
    text = f"{need}, worth {' and '.join(worth) or 'little'}, for {_money(cost)} of transfer"
    if donor_more >= 0.5:
        text += f" ({from_name} then expects {donor_more:,.1f} more lost sales)"
    return text


def _reason(
    to_name: str,
    from_name: str,
    short: float,
    days: float,
    over_x: float,
    over_t: float,
    shortage_avoided: float,
    excess_avoided: float,
    donor_shortage: float,
    cost: float,
) -> str:
    """One line's reason in a planner's words (see :func:`explain`)."""
    if short > 0:
        when = "" if days != days else (f", stockout in about {int(days)} days" if days > 0 else ", out of stock now")
        need = f"{to_name} short {short:,.0f} units{when}"
    else:
        need = f"{to_name} has room below its excess level"
    have = (
        f"{from_name} {over_x:,.0f} above its excess level"
        if over_x > 0
        else f"{from_name} {over_t:,.0f} above its target"
    )
    gains = []
    if shortage_avoided > 0.5:
        gains.append(f"{_money(shortage_avoided)} of shortage")
    if excess_avoided > 0.5:
        gains.append(f"{_money(excess_avoided)} of excess")
    benefit = f"avoids {' and '.join(gains) or 'little cost'} for {_money(cost)} of transfer"
    if donor_shortage > 0.5:
        benefit += f" (leaves {from_name} {_money(donor_shortage)} of shortage)"
    return f"{need}; {have}; {benefit}"


BEFORE_COLUMNS = ["shortage_cost", "excess_cost", "expected_short", "excess_level", "position", "target", "horizon", "shortage_units"]  # fmt: skip
AFTER_COLUMNS = ["shortage_cost", "excess_cost", "expected_short"]


def explain(problem: PlanningProblem, score: Score) -> pd.DataFrame:
    """The plan table: one row per line with its id, cost, benefit and a reason in a planner's words.

    A receiver's shortage cost avoided and a donor's excess cost avoided are
    shared among that position's lines in proportion to quantity; a lane's
    truck cost among its lines in proportion to volume.
    """
    ln = score.lines.copy()
    if ln.empty:
        return pd.DataFrame(columns=PLAN_COLUMNS)
    keys = ["site_id", "sku_id"]
    to_key = pd.MultiIndex.from_frame(ln[["to_site_id", "sku_id"]])
    from_key = pd.MultiIndex.from_frame(ln[["from_site_id", "sku_id"]])
    before_columns = [*BEFORE_COLUMNS, *(["days_until_stockout"] if "days_until_stockout" in problem.positions else [])]
    # Only the columns read here are indexed: indexing whole positions tables copied every column
    # (200 x 20,000: 4.7 of the 5.7 s this took).
    before = problem.positions[keys + before_columns].set_index(keys)
    after = score.positions_after[keys + AFTER_COLUMNS].set_index(keys)
    to_b, to_a = before.reindex(to_key), after.reindex(to_key)
    if "days_until_stockout" not in to_b and problem.inbound is not None:
        positions = problem.positions
        receivers = positions[pd.MultiIndex.from_frame(positions[keys]).isin(to_key.unique())]
        days = project(receivers, problem.inbound, problem.as_of).set_index(keys)["days_until_stockout"]
        to_b = to_b.assign(days_until_stockout=days.reindex(to_key).to_numpy())
    fr_b, fr_a = before.reindex(from_key), after.reindex(from_key)
    in_total = ln.groupby(["to_site_id", "sku_id"])["qty"].transform("sum").to_numpy(float)
    out_total = ln.groupby(["from_site_id", "sku_id"])["qty"].transform("sum").to_numpy(float)
    qty = ln["qty"].to_numpy(float)
    shortage_avoided = (to_b["shortage_cost"].fillna(0).to_numpy() - to_a["shortage_cost"].to_numpy()) * qty / in_total
    excess_avoided = (fr_b["excess_cost"].fillna(0).to_numpy() - fr_a["excess_cost"].to_numpy()) * qty / out_total
    donor_shortage = (fr_a["shortage_cost"].to_numpy() - fr_b["shortage_cost"].to_numpy()) * qty / out_total
    vol = qty * ln["unit_volume"].to_numpy(float)
    lane_vol = pd.Series(vol).groupby(ln["lane_id"].to_numpy()).transform("sum").to_numpy(float)
    trucks = ln["lane_id"].map(score.trucks).fillna(0).to_numpy(float)
    truck_share = np.where(
        lane_vol > 0,
        trucks * ln["cost_per_truck"].fillna(0).to_numpy(float) * vol / np.where(lane_vol > 0, lane_vol, 1),
        0.0,
    )

    sites = problem.sites.set_index("site_id")["name"]
    to_names = ln["to_site_id"].map(sites).fillna(ln["to_site_id"]).tolist()
    from_names = ln["from_site_id"].map(sites).fillna(ln["from_site_id"]).tolist()
    short = to_b["shortage_units"].fillna(0.0).to_numpy(float).tolist()
    days = (
        (to_b["days_until_stockout"] if "days_until_stockout" in to_b else pd.Series(np.nan, index=to_b.index))
        .to_numpy(float)
        .tolist()
    )
    over_x = (fr_b["position"] - fr_b["excess_level"]).to_numpy(float).tolist()
    over_t = (fr_b["position"] - fr_b["target"]).to_numpy(float).tolist()
    cost = (ln["line_cost"].to_numpy(float) + truck_share).tolist()
    if is_expected(problem.positions):
        lost_b = to_b["expected_short"].fillna(0.0).to_numpy(float)
        lost_a = to_a["expected_short"].to_numpy(float)
        donor_more = (
            (fr_a["expected_short"].to_numpy(float) - fr_b["expected_short"].fillna(0.0).to_numpy(float))
            * qty
            / out_total
        )
        horizon = to_b["horizon"].fillna(problem.scenario.horizon_days).to_numpy(float)
        reasons = [
            _expected_reason(*row)
            for row in zip(
                to_names,
                from_names,
                qty.tolist(),
                horizon.tolist(),
                lost_b.tolist(),
                lost_a.tolist(),
                shortage_avoided.tolist(),
                excess_avoided.tolist(),
                donor_more.tolist(),
                cost,
            )
        ]
    else:
        reasons = [
            _reason(*row)
            for row in zip(
                to_names,
                from_names,
                short,
                days,
                over_x,
                over_t,
                shortage_avoided.tolist(),
                excess_avoided.tolist(),
                donor_shortage.tolist(),
                cost,
            )
        ]

    skus = problem.positions.drop_duplicates("sku_id").set_index("sku_id")["sku_name"]
    table = pd.DataFrame(
        {
            "transfer_id": [transfer_id(*t) for t in ln[LINE_KEYS].itertuples(index=False)],
            "sku_id": ln["sku_id"],
            "sku_name": ln["sku_id"].map(skus),
            "category": ln["category"],
            "from_site_id": ln["from_site_id"],
            "from_site": ln["from_site_id"].map(sites),
            "to_site_id": ln["to_site_id"],
            "to_site": ln["to_site_id"].map(sites),
            "qty": ln["qty"].astype(np.int64),
            "packs": (ln["qty"] / ln["pack_size"]).astype(np.int64),
            "lead_time_days": ln["lead_time_days"],
            "cost_per_unit": ln["cost_per_unit"],
            "line_cost": ln["line_cost"].round(4),
            "truck_share": truck_share.round(2),
            "shortage_avoided": shortage_avoided.round(2),
            "excess_avoided": excess_avoided.round(2),
            "days_until_stockout": days,
            "reason": reasons,
        }
    )
    return table.sort_values(["shortage_avoided", "transfer_id"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def best_candidate(problem: PlanningProblem) -> dict | None:
    """When no transfer pays: the candidate line that comes closest, with what it would cost and save.

    Each candidate arc is tried alone at its least quantity (the minimum move) and at its
    largest; its cost includes the cost per move and the trucks it alone would need. None when
    there is no candidate at all (no donor and receiver of a sku on an allowed lane could gain).
    """
    arcs = problem.arcs
    if len(arcs) == 0:
        return None
    pos = problem.positions
    P0 = pos["position"].to_numpy(float)
    lanes = problem.lanes
    best: dict | None = None
    for packs in (arcs.min_packs, arcs.ub):
        q = (packs * arcs.pack).astype(float)
        saved = (position_cost(pos, P0[arcs.src], arcs.src) - position_cost(pos, P0[arcs.src] - q, arcs.src)) + (
            position_cost(pos, P0[arcs.dst], arcs.dst) - position_cost(pos, P0[arcs.dst] + q, arcs.dst)
        )
        cap = lanes["truck_capacity"].to_numpy(float)[arcs.lane]
        trucks = np.where(
            np.isfinite(cap) & (cap > 0),
            trucks_for(q * arcs.volume, cap),
            0,
        )
        cost = (
            q * arcs.cost_per_unit
            + problem.scenario.cost_per_move
            + trucks * lanes["cost_per_truck"].to_numpy(float)[arcs.lane]
        )
        k = int(np.argmax(saved - cost))
        if best is None or saved[k] - cost[k] > best["net"]:
            best = {
                "sku_id": str(pos["sku_id"].iat[arcs.src[k]]),
                "from_site_id": str(pos["site_id"].iat[arcs.src[k]]),
                "to_site_id": str(pos["site_id"].iat[arcs.dst[k]]),
                "qty": int(q[k]),
                "saves": float(saved[k]),
                "costs": float(cost[k]),
                "net": float(saved[k] - cost[k]),
            }
    names = problem.sites.set_index("site_id")["name"]
    best["message"] = (
        f"No transfer pays today. The closest: {best['qty']:,} of {best['sku_id']} from {names.get(best['from_site_id'], best['from_site_id'])} "
        f"to {names.get(best['to_site_id'], best['to_site_id'])} would save {_money(best['saves'])} for {_money(best['costs'])} of transfer."
    )
    return best


def nothing_pays_message(problem: PlanningProblem) -> str:
    """Why a plan is empty, in words (see :func:`best_candidate`)."""
    best = best_candidate(problem)
    if best is None:
        return "No transfer pays today: no sku has a site that could give and another that would gain more than the cheapest lane costs."
    return best["message"]


def plan_lines(table: pd.DataFrame) -> pd.DataFrame:
    """The (sku, from, to, qty) core of a plan table or PLAN.csv."""
    return table[LINE_KEYS + ["qty"]].astype({"sku_id": str, "from_site_id": str, "to_site_id": str, "qty": np.int64})


def empty_lines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku_id": pd.Series(dtype=str),
            "from_site_id": pd.Series(dtype=str),
            "to_site_id": pd.Series(dtype=str),
            "qty": pd.Series(dtype=np.int64),
        }
    )


def _as_lines(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return empty_lines()
    out = frame[LINE_KEYS + ["qty"]].astype({"sku_id": str, "from_site_id": str, "to_site_id": str})
    return out.astype({"qty": np.int64}).reset_index(drop=True)
