"""Views: pure figure builders (data in, plotly / pydeck object out) and the one money format.

May import: ``decisions``, ``signals``, ``governance``, plotly, pydeck. Never ``store`` or
``services``; never Streamlit.
"""
