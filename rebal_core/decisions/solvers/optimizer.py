"""The transfer optimizer: least network cost per ``rebalancing-model.md``, with a proven bound.

Method (measured in ``bench/bench_plan.py``; figures in the README)
-------------------------------------------------------------------
The spec's problem is a mixed-integer program whose size is set by the
candidate arcs (sku x donor x receiver on an allowed lane, safely pruned in
:mod:`rebal_core.decisions.planning`) and whose difficulty comes from a few rules that
couple skus (trucks, lane max units, receive capacity, budget) or break
convexity within a sku (rule 4, minimum move, cost per move).

1. **Relaxation = lower bound.** Within a sku a position's cost
   ``f(P) = p (T - P)+ + h (P - X)+`` is convex, so with integer packs it is a
   chain of at most five arcs of rising cost to a sink; donors and receivers
   are separate nodes. One ``SimpleMinCostFlow`` built from numpy arrays
   carries every sku (split into chunks of independent skus: cost scaling is
   superlinear). Rule 4 is made exact by a *batched branch and bound*
   (:func:`solve_skus`): where a position both ships and receives, its sku
   branches ("may not ship" / "may not receive") and all open branches of all
   skus go into the next single flow. With receive capacities the flow runs in
   units through one gate node per site, making them exact
   (:func:`relax`; packs and rule 4 relaxed there), up to ``GATED_MAX_ARCS``
   candidate arcs; above, they are priced too so every flow splits per sku
   (shards on Ray). Lane max units and the
   budget are dualised with Lagrangian prices (Polyak steps); trucks are
   priced at ``cost_per_truck / truck_capacity`` per volume unit and the cost
   per move is spread over the arc's bound (``y >= x / ub``). Each of these
   is a relaxation, so every value is a **proven lower bound**
   (``L(lambda) <= OPT`` for every ``lambda >= 0``).
2. **Plans.** Each relaxation's plan is repaired to feasibility (rule 4 keeps
   the larger side, minimum moves raised or dropped, lines that do not earn
   their cost per move or truck share dropped, capacities trimmed from the
   least benefit per unit, trucks that do not pay for their load dropped,
   budget). Then **re-flow** (arcs into full capacities frozen at their load,
   everything else re-solved with rule 4 exact) and **dynamic slope scaling**
   for trucks (Kim and Pardalos, 1999: re-solve with the truck cost per volume
   each lane actually pays), each a fixed number of rounds so results do not
   depend on the machine's speed unless the time limit cuts in.
3. **The whole spec as a MIP** (OR-Tools' model builder and SCIP, built from
   sparse arrays in one call, warm-started with the plan) for small networks
   (<= ``FULL_MIP_ARCS`` candidate arcs), where its bound proves optimality
   (tests: equal to an independent monolithic MIP); and for mid-size ones
   (<= ``BOUND_MIP_ARCS``) when the limit leaves ``BOUND_MIP_SECONDS`` or
   more: SCIP's cuts on the trucks tighten the bound (sample: gap 3.1 % ->
   2.3 % with a 30 s limit) though it rarely finds a better plan.

Why not one MIP for everything: the monolithic model of 50 x 5,000 takes 46 s
just to build variable by variable and SCIP finds no plan in a minute; even
on the sample it ends far above this method with 20x the time
(``bench/bench_plan.py``). HiGHS through OR-Tools 9.15 returns no solution
when it hits a time limit and crashes on hints, so SCIP it is.

The code, by step: :mod:`~rebal_core.decisions.solvers.flow` (per-sku flows and branch and
bound), :mod:`~rebal_core.decisions.solvers.costs`, :mod:`~rebal_core.decisions.solvers.search`
(relaxation, Lagrangian bound, slope scaling), :mod:`~rebal_core.decisions.solvers.repair`,
:mod:`~rebal_core.decisions.solvers.mip`, :mod:`~rebal_core.decisions.solvers.method` (the
whole method). This module names them all for callers (``optimizer.plan``).
"""

from rebal_core.decisions.solvers.costs import *  # noqa: F403
from rebal_core.decisions.solvers.flow import *  # noqa: F403
from rebal_core.decisions.solvers.method import *  # noqa: F403
from rebal_core.decisions.solvers.mip import *  # noqa: F403
from rebal_core.decisions.solvers.repair import *  # noqa: F403
from rebal_core.decisions.solvers.search import *  # noqa: F403
from rebal_core.errors import CommitmentsInvalid  # noqa: F401
