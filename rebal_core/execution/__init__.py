"""Execution: what leaves the dock (pure). Spreadsheet-safe CSV files (``files``) and plan
outcomes against later snapshots (``outcomes``).

May import: ``decisions``, ``signals``. Never ``store`` or ``services``.
"""
