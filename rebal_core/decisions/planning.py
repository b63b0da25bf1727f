"""Transfer plans: the planning problem, the score and feasibility, per ``rebalancing-model.md``.

This module is the judge. Whatever method produced a plan (optimizer, greedy
baseline, a planner's edits, a PLAN.csv read back), :func:`evaluate` scores it
by the spec and :func:`violations` lists every rule it breaks, so the app, the
CSV and the command line agree.

The candidate transfer arcs built here are *safely pruned*: an arc is left out
only when some optimal plan provably does not use it, so optimizers can work
on the candidates alone and still prove optimality. For sku ``s`` with unit
shortage penalty ``p`` and unit excess penalty ``h`` (the same at every site),
a line ``i -> j`` changes cost by at most ``-(g_i + g_j - c_ij) q`` where
``g_i = h`` if the donor starts above its excess level (else 0) and
``g_j = p`` if the receiver starts below target (else 0): a donor never
receives (rule 4) so its position only falls, a receiver's only rises. Removing
a whole line keeps a plan feasible (fewer trucks, less volume, same rules), so
lines with ``c_ij >= g_i + g_j`` are never needed. In particular donors must
start above target and receivers below their excess level.

The code, by part: :mod:`~rebal_core.decisions.problem` (the problem and its safe arcs),
:mod:`~rebal_core.decisions.judge` (score and rules), :mod:`~rebal_core.decisions.explain`
(reasons, summary), :mod:`~rebal_core.decisions.commitments` (plans around decisions). This
module names them all for callers (``planning.evaluate``).
"""

from rebal_core.decisions.commitments import *  # noqa: F403
from rebal_core.decisions.explain import *  # noqa: F403
from rebal_core.decisions.judge import *  # noqa: F403
from rebal_core.decisions.problem import *  # noqa: F403
