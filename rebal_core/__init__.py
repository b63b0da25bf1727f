"""Rebal: multi-location inventory rebalancing (engine; no Streamlit here)."""

__version__ = "0.4.0"
