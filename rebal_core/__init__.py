"""Rebal: multi-location inventory rebalancing, the engine (no Streamlit here).

Four pure layers of the decision system, then the store, the use cases and the views:
``signals`` (what the network says) -> ``decisions`` (what to move and why; ``solvers``,
``what_if``) -> ``execution`` (what leaves the dock) and ``governance`` (who may, under
which policy); ``store`` (the only code that touches the database); ``services`` (the use
cases pages and the command line call); ``views`` (figures). ``errors``, ``progress`` and
``format`` are leaves every layer may import. Arrows only point down
(``tests/architecture/test_layers.py``).
"""

__version__ = "0.4.0"
