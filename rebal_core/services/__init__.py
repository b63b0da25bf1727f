"""Services: the use cases, named by the planner's verbs: datasets (import, load, signals),
the plan workflow (scenarios, approvals, release, corrections, monitoring), accounts.

Pages and the command line call ``services`` and ``views`` only. Services may import
every layer below (signals, decisions, execution, governance, store). The package
re-exports ``datasets`` and exposes ``workflow`` and ``accounts``.
"""

from rebal_core.services import accounts, workflow  # noqa: E402, F401  (after datasets: they use it)
from rebal_core.services.datasets import *  # noqa: F403
