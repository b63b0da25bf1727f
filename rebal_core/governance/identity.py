"""Who is acting, and what each role may do. Pure: no I/O, no Streamlit.

Roles are ordered by trust but permissions are listed per action, so a role
gets exactly what the table says (an approver may approve, not edit
quantities). The ``system`` role is the autopilot's: it plans and releases, and
approves only what the policy lets through on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rebal_core.errors import PermissionDenied  # noqa: F401 (re-exported: callers name them here)

ROLES = ("viewer", "planner", "approver", "admin")
SYSTEM_ROLE = "system"

_ALL = {"viewer", "planner", "approver", "admin", SYSTEM_ROLE}
PERMISSIONS: dict[str, set[str]] = {
    "view": _ALL,
    "import_data": {"planner", "admin", SYSTEM_ROLE},
    "delete_data": {"admin"},
    "replace_planned_data": {"admin"},  # import --replace over a dataset that holds saved plans
    "save_scenario": {"planner", "admin", SYSTEM_ROLE},
    "edit_scenario": {"planner", "admin", SYSTEM_ROLE},  # rename, clone, delete, re-solve
    "edit_line": {"planner", "admin"},  # firm quantities
    "exclude_line": {"planner", "approver", "admin"},  # reject in draft: the planner's own judgement
    "decide_line": {"approver", "admin"},  # approve or reject lines under review
    "approve_by_policy": {"planner", "approver", "admin", SYSTEM_ROLE},  # lines under the thresholds
    "submit": {"planner", "admin", SYSTEM_ROLE},
    "approve_plan": {"approver", "admin"},
    "send_back": {"planner", "approver", "admin"},
    "release": {"planner", "approver", "admin", SYSTEM_ROLE},
    "receive": {"planner", "admin"},
    "set_policy": {"admin"},
    "manage_users": {"admin"},
    "override": {"admin"},
}

ACTION_WORDS = {
    "import_data": "importing data",
    "delete_data": "deleting a dataset",
    "replace_planned_data": "replacing a dataset that holds saved plans",
    "save_scenario": "saving scenarios",
    "edit_scenario": "changing scenarios",
    "edit_line": "editing line quantities",
    "exclude_line": "excluding lines",
    "decide_line": "approving or rejecting lines",
    "approve_by_policy": "approving lines under the policy thresholds",
    "submit": "submitting plans for review",
    "approve_plan": "approving plans",
    "send_back": "sending plans back to draft",
    "release": "releasing plans",
    "receive": "confirming receipt",
    "set_policy": "changing the approval policy",
    "manage_users": "managing users",
    "override": "overriding checks",
}


@dataclass(frozen=True)
class Actor:
    """The signed-in user (or the system) on whose behalf the core acts."""

    username: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in _ALL:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]

    def require(self, action: str) -> None:
        if not self.can(action):
            allowed = sorted(PERMISSIONS[action] - {SYSTEM_ROLE}, key=lambda r: ROLES.index(r))
            raise PermissionDenied(
                f"{self.username} is a {self.role}; {ACTION_WORDS.get(action, action)} needs the {' or '.join(allowed)} role"
            )


AUTOPILOT = Actor("system:autopilot", SYSTEM_ROLE)

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD = 10


def password_problem(password: str) -> str | None:
    """The minimum password policy: at least MIN_PASSWORD characters, not blank at either end of
    its meaning (no all-space or one-character passwords), at least 5 different characters."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if not password.strip() or len(set(password)) < 5:
        return "a password needs at least 5 different characters (spaces alone or one repeated character are too easy to guess)"
    return None


def hash_password(password: str) -> str:
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's defaults."""
    return _hasher.check_needs_rehash(password_hash)
