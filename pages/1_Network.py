"""Network: a map of sites, sized by stock value, coloured by status or value at risk; click to drill down."""

import streamlit as st

from pages.components import state, widgets
from rebal_core.services import site_summary, worst_positions
from rebal_core.views.figures import map_legend, money, network_map
from rebal_core.views.tables import position_columns

st.set_page_config(page_title="Network - Rebal", layout="wide")
st.title("Network")

dataset, net, pos = state.require_dataset()
shown = widgets.position_filters(pos, key="network")
widgets.kpi_cards(shown)

sites = site_summary(shown, net.sites)
color_by = st.radio(
    "Colour sites by",
    ["status", "value at risk"],
    horizontal=True,
    key="network-color",
    help="Status: red = shortage dominates, blue = excess dominates, amber = both, teal = balanced.",
)
focus = st.session_state.get("focus_site")
event = st.pydeck_chart(
    network_map(sites, color_by=color_by, selected=focus),
    on_select="rerun",
    selection_mode="single-object",
    key="network-map",
    height=520,
)
st.caption(map_legend(color_by, sites))
picked = (event.selection.objects.get("sites") or [None])[0] if event and event.selection else None
if picked:
    st.session_state["focus_site"] = picked["site_id"]

names = dict(zip(net.sites["site_id"], net.sites["name"]))
options = list(sites.sort_values("value_at_risk", ascending=False)["site_id"])
current = st.session_state.get("focus_site")
choice = st.selectbox(
    "Site",
    options,
    index=options.index(current) if current in options else None,
    format_func=lambda s: f"{names.get(s, s)} ({s})",
    placeholder="Click a site on the map or choose one here",
)
if choice:
    st.session_state["focus_site"] = choice
    row = sites.set_index("site_id").loc[choice]
    st.subheader(f"{row['name']} · {row['kind']} · {row['region']}")
    c = st.columns(5)
    c[0].metric("Stock value", money(row["stock_value"]))
    c[1].metric("Expected fill rate", f"{row['fill_rate']:.1%}")
    c[2].metric("Shortage value", money(row["shortage_value"]))
    c[3].metric("Excess value", money(row["excess_value"]))
    c[4].metric(
        "Days of cover", f"{row['days_of_cover']:,.0f}" if row["days_of_cover"] == row["days_of_cover"] else "-"
    )
    mine = shown[shown["site_id"] == choice]
    by = st.radio(
        "Worst positions by",
        ["shortage value", "excess value", "days until stockout"],
        horizontal=True,
        key="network-worst",
    )
    table = worst_positions(mine, by, n=50)[
        [
            "sku_id",
            "sku_name",
            "category",
            "status",
            "on_hand",
            "in_transit",
            "inbound",
            "mean_daily",
            "target",
            "excess_level",
            "shortage_units",
            "excess_units",
            "shortage_value",
            "excess_value",
            "days_until_stockout",
        ]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="network-site-table",
        column_config=widgets.column_config(position_columns(list(table.columns))),
    )
    if st.button("Open in Hotspots", key="network-to-hotspots"):
        st.switch_page("pages/2_Hotspots.py")

st.caption(
    "Site outlines: Natural Earth and US Census Bureau via the world-atlas and us-atlas packages. City coordinates: GeoNames (CC BY 4.0)."
)
