"""The approval workflow's rules: plan lifecycle, line statuses and the approval policy. Pure, no I/O.

Plan lifecycle::

    draft --submit--> in_review --approve--> approved --release--> released --receive--> received
      ^                  |                       |
      +----send_back-----+-----------------------+

Lines are ``proposed`` (by the optimizer), ``approved``, ``rejected`` (with a
reason; stays out of every re-plan) or ``firm`` (quantity set by a planner;
kept by every re-plan). A line is *released* once its transfer order has been
handed over (exported); released lines never change again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rebal_core.errors import IllegalTransition  # noqa: F401 (re-exported: callers name them here)
from rebal_core.format import money_whole

PLAN_STATES = ("draft", "in_review", "approved", "released", "received")
STATE_WORDS = {
    "draft": "a draft",
    "in_review": "in review",
    "approved": "approved",
    "released": "released",
    "received": "received",
}
LINE_STATUSES = ("proposed", "approved", "rejected", "firm")

# event -> (from states, to state, required permission)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "submit": (("draft",), "in_review", "submit"),
    "send_back": (("in_review", "approved"), "draft", "send_back"),
    "approve": (("in_review",), "approved", "approve_plan"),
    "release": (("approved",), "released", "release"),
    "receive": (("released",), "received", "receive"),
}
HINTS = {
    ("release", "draft"): "submit it for review and have it approved first",
    ("release", "in_review"): "approve it first",
    ("approve", "draft"): "submit it for review first",
    ("receive", "approved"): "release it first",
    ("submit", "in_review"): "it is already in review",
}

# Where each line action is allowed (plan states) and what it needs.
LINE_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": (("in_review",), "decide_line"),
    "reject": (("draft", "in_review"), "exclude_line"),
    "firm": (("draft", "in_review"), "edit_line"),
    "reset": (("draft", "in_review"), "edit_line"),  # back to proposed (undo a decision)
}
FIXED_STATUSES = ("approved", "firm")  # kept by a re-plan, with released lines


def next_state(state: str, event: str) -> str:
    """The state after ``event``; raises :class:`IllegalTransition` with what to do instead."""
    if event not in TRANSITIONS:
        raise IllegalTransition(f"unknown plan action {event!r}; expected one of {', '.join(TRANSITIONS)}")
    sources, target, _ = TRANSITIONS[event]
    if state not in sources:
        hint = HINTS.get((event, state))
        raise IllegalTransition(
            f"cannot {event.replace('_', ' ')} a plan that is {STATE_WORDS.get(state, state)}"
            + (f": {hint}" if hint else f" (only from {' or '.join(STATE_WORDS[s] for s in sources)})")
        )
    return target


def check_line_action(state: str, action: str) -> None:
    if action not in LINE_ACTIONS:
        raise IllegalTransition(f"unknown line action {action!r}; expected one of {', '.join(LINE_ACTIONS)}")
    states = LINE_ACTIONS[action][0]
    if state not in states:
        raise IllegalTransition(
            f"cannot {action} lines of a plan that is {STATE_WORDS.get(state, state)}; lines can be {action}ed only while the plan is "
            + " or ".join(STATE_WORDS[s] for s in states)
        )


# ----------------------------------------------------------------------------- the approval policy


@dataclass(frozen=True)
class Thresholds:
    """Above these a line needs an approver; ``None`` = no limit."""

    line_value: float | None = None  # qty x unit cost
    line_cost: float | None = None  # transfer cost of the line incl. its truck share


@dataclass(frozen=True)
class Policy:
    """Versioned approval thresholds: a default, and overrides per lane ("FROM>TO") or category.

    The most specific threshold wins, each figure on its own: a lane's, else the
    category's, else the default (so a routine shuttle lane may be looser than
    the default and a fragile category stricter).
    """

    version: int = 0
    default: Thresholds = field(default_factory=lambda: Thresholds(line_value=5_000.0, line_cost=500.0))
    lanes: dict[str, Thresholds] = field(default_factory=dict)
    categories: dict[str, Thresholds] = field(default_factory=dict)
    # A plan's approver is not its author, a line's approver not who set its quantity.
    # An admin may switch it off (a one-person business); the policy change is audited.
    four_eyes: bool = True

    def problems(self) -> list[str]:
        out = []
        for where, t in [
            ("default", self.default),
            *((f"lane {k}", v) for k, v in self.lanes.items()),
            *((f"category {k}", v) for k, v in self.categories.items()),
        ]:
            for name in ("line_value", "line_cost"):
                v = getattr(t, name)
                if v is not None and (
                    not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0
                ):
                    out.append(f"{where}: {name} must be a number >= 0 or empty, got {v!r}")
        return out

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("version")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, version: int) -> Policy:
        raw = json.loads(text or "{}")

        def t(d: dict | None) -> Thresholds:
            d = d or {}
            return Thresholds(line_value=d.get("line_value"), line_cost=d.get("line_cost"))

        return cls(
            version=version,
            four_eyes=bool(raw.get("four_eyes", True)),
            default=t(raw.get("default")),
            lanes={k: t(v) for k, v in (raw.get("lanes") or {}).items()},
            categories={k: t(v) for k, v in (raw.get("categories") or {}).items()},
        )

    def assess(self, lines: pd.DataFrame) -> pd.DataFrame:
        """``needs_approval`` and ``approval_rule`` (why, in words) per line.

        ``lines`` needs lane_id (or from/to site ids), category, value and cost columns.
        """
        n = len(lines)
        lane = (
            lines["lane_id"]
            if "lane_id" in lines
            else lines["from_site_id"].astype(str) + ">" + lines["to_site_id"].astype(str)
        )
        needs = np.zeros(n, dtype=bool)
        rules: list[list[str]] = [[] for _ in range(n)]
        for name, column, label in (("line_value", "value", "line value"), ("line_cost", "cost", "line cost")):
            limit = np.full(n, np.inf if getattr(self.default, name) is None else float(getattr(self.default, name)))
            source = np.full(n, "default", dtype=object)
            # category first, then lane, so the more specific one overwrites
            for key, table, where in ((lines["category"], self.categories, "category"), (lane, self.lanes, "lane")):
                for k, th in table.items():
                    v = getattr(th, name)
                    if v is None:
                        continue
                    hit = (key == k).to_numpy()
                    limit[hit] = float(v)
                    source[hit] = f"{where} {k}"
            amount = lines[column].to_numpy(float)
            over = amount > limit
            needs |= over
            for i in np.flatnonzero(over):
                rules[i].append(
                    f"{label} {money_whole(amount[i])} > {money_whole(limit[i])} ({source[i]}, policy v{self.version})"
                )
        return pd.DataFrame(
            {"needs_approval": needs, "approval_rule": ["; ".join(r) for r in rules]}, index=lines.index
        )
