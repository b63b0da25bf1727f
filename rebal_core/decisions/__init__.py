"""Decisions: what to move, and why (pure).

The scenario's parameters (``scenario``), positions with their projection and costs
(``positions``), the planning problem, its judge and its reasons (``planning``); the
solvers in ``solvers/`` and the what-ifs (uncertainty, compare, backtest) in ``what_if/``.

May import: ``signals``, numpy, pandas, scipy, ortools. Never ``store``, ``services`` or
``views``.
"""
