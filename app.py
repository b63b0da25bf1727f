"""Rebal's entry point: page configuration and navigation.

Pages are registered explicitly with ``st.navigation`` (so the sidebar says
"Home", not "app"); each page file under ``pages/`` is also runnable on its
own, which is how the AppTests exercise them.
"""

import streamlit as st

st.set_page_config(page_title="Rebal - inventory rebalancing", page_icon=":material/swap_horiz:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/0_Home.py", title="Home", icon=":material/home:", url_path="home", default=True),
        st.Page("pages/1_Network.py", title="Network", icon=":material/map:", url_path="Network"),
        st.Page("pages/2_Hotspots.py", title="Hotspots", icon=":material/local_fire_department:", url_path="Hotspots"),
        st.Page("pages/3_Data.py", title="Data", icon=":material/database:", url_path="Data"),
    ]
)
navigation.run()
