"""The refusals: every way Rebal says "no" to a request, defined once.

Each is a request that cannot be done as asked, with a message that names what is wrong
and where; nothing was changed. Pages and the command line show ``REFUSALS`` as messages
(exit code 2 on the command line); anything else is a bug and is reported as one.
Every layer may import this module; it imports nothing of Rebal's.
"""

from __future__ import annotations

from typing import Any


class BundleInvalid(Exception):
    """A bundle with errors; ``errors`` holds all of them (``signals.bundle.Finding``)."""

    def __init__(self, errors: list[Any], warnings: list[Any], more: int = 0):
        self.errors = errors
        self.warnings = warnings
        self.more = more
        super().__init__(f"{len(errors) + more} error(s) in the bundle; first: {errors[0] if errors else '-'}")

    def report(self) -> str:
        lines = [str(e) for e in self.errors]
        if self.more:
            lines.append(f"... and {self.more} more error(s)")
        return "\n".join(lines)


class ScenarioInvalid(ValueError):
    """A scenario with parameters out of range, with every problem, one per entry."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class CommitmentsInvalid(ValueError):
    """Fixed lines that break the rules of a feasible plan, one problem per entry (``planning.Violation``)."""

    def __init__(self, problems: list[Any]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


class PermissionDenied(PermissionError):
    """The actor's role does not allow the action."""


class IllegalTransition(ValueError):
    """A lifecycle event or line action that the plan's state does not allow."""


class WorkflowError(ValueError):
    """A request that cannot be done as asked (unknown scenario, name taken, bad quantity...)."""


class Conflict(WorkflowError):
    """Someone changed the plan meanwhile; reload and try again."""


class PlanningBlocked(WorkflowError):
    """The dataset has critical signal findings that nobody has overridden: no plan is made on it.
    ``findings`` holds them (a signals table) when the caller can show them."""

    def __init__(self, message: str, findings: Any = None):
        self.findings = findings
        super().__init__(message)


class AccountError(ValueError):
    """A user request that cannot be done (unknown user, taken name, bad password...)."""


class ConfigurationError(AccountError):
    """The environment configures something that cannot work; the message names the variable."""


class AccountLocked(AccountError):
    """Too many failed sign-ins in a row: refused until the lock ends or an admin unlocks."""


class DatasetExists(Exception):
    """A dataset of that name is already stored and replacing it was not asked for."""


class DatasetNameInvalid(ValueError):
    """A dataset name that is empty or too long."""


class DatasetInUse(Exception):
    """A dataset cannot be replaced: plans on it are in review, approved or released."""


class StoreBusy(Exception):
    """The store stayed locked by another writer (an import, usually) through every retry."""


# What a page or the command line shows as a message (bad input and refused requests).
REFUSALS: tuple[type[Exception], ...] = (
    WorkflowError,
    IllegalTransition,
    PermissionDenied,
    AccountError,
    DatasetInUse,
    DatasetNameInvalid,
    StoreBusy,
)
