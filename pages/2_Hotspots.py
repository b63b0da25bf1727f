"""Hotspots: site x category heatmaps, the worst positions, and one position's projection."""

import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import WORST_BY, projection_series, summarize, worst_positions
from rebal_core.views.figures import HEATMAP_METRICS, heatmap, projection_figure
from rebal_core.views.tables import position_columns

st.set_page_config(page_title="Hotspots - Rebal", layout="wide")
st.title("Hotspots")

dataset, net, pos = state.require_dataset()
shown = widgets.position_filters(pos, key="hotspots")
names = dict(zip(net.sites["site_id"], net.sites["name"]))

metric = (
    st.segmented_control("Heatmap", list(HEATMAP_METRICS), default="value at risk", key="hotspots-metric")
    or "value at risk"
)
st.plotly_chart(
    heatmap(summarize(shown, ["site_id", "category"]), metric, names), width="stretch", key="hotspots-heatmap"
)

st.subheader("Worst positions")
by = st.radio("Rank by", list(WORST_BY), horizontal=True, key="hotspots-rank")
worst = worst_positions(shown, by, n=500)
columns = [
    "site_id",
    "site_name",
    "sku_id",
    "sku_name",
    "category",
    "status",
    "position",
    "mean_daily",
    "target",
    "excess_level",
    "shortage_units",
    "excess_units",
    "shortage_value",
    "excess_value",
    "days_of_cover",
    "days_until_stockout",
    "days_until_excess",
]
event = st.dataframe(
    worst[columns],
    hide_index=True,
    width="stretch",
    height=320,
    on_select="rerun",
    selection_mode="single-row",
    key="hotspots-table",
    column_config=widgets.column_config(position_columns(columns)),
)
widgets.download_csv(worst[columns], "worst_positions.csv", "Download these positions (CSV)", key="hotspots-download")
if event and event.selection.rows:
    row = worst.iloc[event.selection.rows[0]]
    st.session_state["focus_site"], st.session_state["focus_sku"] = row["site_id"], row["sku_id"]

st.subheader("Position projection")
site_options = sorted(pos["site_id"].unique())
focus_site = st.session_state.get("focus_site") or (worst["site_id"].iloc[0] if len(worst) else site_options[0])
left, right = st.columns(2)
site = left.selectbox(
    "Site",
    site_options,
    index=site_options.index(focus_site) if focus_site in site_options else 0,
    format_func=lambda s: f"{names.get(s, s)} ({s})",
    key=f"hotspots-site-{focus_site}",
)
at_site = pos[pos["site_id"] == site].sort_values("shortage_value", ascending=False)
sku_options = list(at_site["sku_id"])
focus_sku = st.session_state.get("focus_sku")
sku_names = dict(zip(at_site["sku_id"], at_site["sku_name"]))
sku = right.selectbox(
    "SKU",
    sku_options,
    index=sku_options.index(focus_sku) if focus_sku in sku_options else 0,
    format_func=lambda s: f"{s} · {sku_names.get(s, '')}",
    key=f"hotspots-sku-{site}-{focus_sku}",
)
st.session_state["focus_site"], st.session_state["focus_sku"] = site, sku
position = at_site.set_index("sku_id").loc[sku].copy()
position["sku_id"], position["site_id"] = sku, site
history = services.demand_history(engine=state.engine(), dataset_id=dataset.id, site_id=site, sku_id=sku)
projection = projection_series(position, net.inbound, net.as_of, days=120)
st.plotly_chart(projection_figure(history, projection, position), width="stretch", key="hotspots-projection")
st.caption(
    f"Position {position['position']:,.0f} = on hand {position['on_hand']:,} + in transit {position['in_transit']:,} + inbound within the horizon {position['inbound']:,}. "
    f"Target {position['target']:,.1f} = expected demand {position['mu']:,.1f} + safety stock {position['safety_stock']:,.1f}; "
    f"excess level {position['excess_level']:,.1f}. Status: **{position['status'].replace('_', ' ')}**."
)
