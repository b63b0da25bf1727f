"""Signals: what the network says (pure).

The input contract and bundle loading (``contract``, ``bundle``), coordinates and lanes
(``geo``), demand forecasts and their calibration (``forecast``), cycle-count accuracy
(``accuracy``), signal checks with the one definition of "critical" (``quality``) and the
synthetic sample network (``sample``).

May import: numpy, pandas, statsforecast, the standard library. Never ``store``,
``services`` or ``views``; nothing above it.
"""
