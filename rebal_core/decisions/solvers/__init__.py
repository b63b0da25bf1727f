"""Solvers: the network optimizer (relaxation, search, repair, MIP), the greedy rule of thumb,
the exact reference MIP the tests check claims against, and the stress-network generators.

May import: ``decisions`` (scenario, positions, planning), ``signals``. Never ``store`` or
``services``.
"""
