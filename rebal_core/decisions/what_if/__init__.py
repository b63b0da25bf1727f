"""What-ifs: Monte Carlo uncertainty of a plan (``uncertainty``), scenario comparison and
sweeps (``compare``), the backtest with its hindsight arm (``backtest``).

May import: ``decisions``, ``decisions.solvers``, ``signals``. Never ``store`` or ``services``.
"""
