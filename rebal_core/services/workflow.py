"""The S&OP plan workflow, by the planner's verbs: :mod:`~rebal_core.services.policy`,
:mod:`~rebal_core.services.scenarios`, :mod:`~rebal_core.services.approvals`,
:mod:`~rebal_core.services.release`, :mod:`~rebal_core.services.corrections`,
:mod:`~rebal_core.services.monitoring`. This module names them all in one place for pages,
the command line and tests (``workflow.solve_scenario``); the code lives in those modules.

Every use case takes the acting user (:class:`rebal_core.governance.identity.Actor`),
checks the role here (not only in the pages), changes the store in one unit of work
(:class:`rebal_core.store.unit_of_work.UnitOfWork`) and records its audit event there.

Concurrency: every change to a plan first takes its lock (``PlanRepository.lock``: a
conditional UPDATE of its ``revision`` while the plan is in a state that allows the
change). That statement takes the write lock (SQLite) or the row lock (PostgreSQL), so two
approvers working on the same plan are serialized and neither's decisions are lost; a
re-solve writes only if the revision it started from is unchanged, else it is refused as
a conflict. Line changes can also carry the line version the user saw, so a decision
taken on stale data is refused rather than silently overwriting someone else's.
"""

from rebal_core.errors import REFUSALS, Conflict, IllegalTransition, PermissionDenied, PlanningBlocked, WorkflowError  # noqa: F401
from rebal_core.services.approvals import *  # noqa: F403
from rebal_core.services.corrections import *  # noqa: F403
from rebal_core.services.monitoring import *  # noqa: F403
from rebal_core.services.policy import *  # noqa: F403
from rebal_core.services.release import *  # noqa: F403
from rebal_core.services.scenarios import *  # noqa: F403
