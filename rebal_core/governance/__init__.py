"""Governance: who may, under which policy (pure). Roles and permissions (``identity``),
plan states, approval thresholds and policy (``policy``).

May import: the standard library, pandas. Never ``store`` or ``services``.
"""
