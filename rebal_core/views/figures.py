"""Pure figure builders: data in, plotly or pydeck object out (no Streamlit)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pydeck as pdk

from rebal_core.decisions.planning import PlanSummary
from rebal_core.decisions.positions import STATUS_LABELS
from rebal_core.format import money, money_whole, signed_money  # noqa: F401 (pages name them here)
from rebal_core.signals.geo import outline_paths_near

# Colour language shared by every view: red = short, amber = below target, teal = balanced,
# blue = excess, grey = no demand.
STATUS_COLORS = {
    "stockout_risk": "#DC2626",
    "below_target": "#F59E0B",
    "balanced": "#0F766E",
    "excess": "#2563EB",
    "no_demand": "#94A3B8",
}
SITE_STATUS_RGB = {"short": [220, 38, 38], "mixed": [245, 158, 11], "excess": [37, 99, 235], "balanced": [15, 118, 110]}


_MARKDOWN = re.compile(r"([\\`*_\[\]<>$|~])")  # links, images, :colour[...] need "[", formatting the rest


def plain(text: object) -> str:
    """Text to show as is in Streamlit markdown (messages, captions, headers): a name such as
    ``![x](http://...)`` or ``:red[...]`` becomes characters, never an image, link, colour or formula."""
    out = _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")
    return "\\" + out if out[:1] in ("#", "-", "+", "=") or re.match(r"\d+[.)] ", out) else out  # no heading or list


def text_label(name: object) -> str:
    """A name as plotly shows it: its labels, legends and hovers read HTML tags (links included), so escape them."""
    return html.escape(str(name))


def view_for(sites: pd.DataFrame, width_px: int = 900, height_px: int = 460) -> pdk.ViewState:
    """A fixed view fitted to the sites' box on a map of ``width_px`` x ``height_px`` (Web Mercator,
    512-pixel world at zoom 0 as deck.gl draws it; a degree of latitude is 1 / cos(lat) times a degree
    of longitude). Fixed for a dataset, so it stays the same across reruns. The default width is the
    narrowest a page's map gets on a laptop beside the sidebar (940 px at a 1,400 px window): wider
    maps show more margin, never fewer sites; half-width maps (Compare) pass their width."""
    lat, lon = sites["lat"].astype(float), sites["lon"].astype(float)
    mid_lat = float((lat.max() + lat.min()) / 2)
    lon_span = max(float(lon.max() - lon.min()), 0.5)
    lat_span = max(float(lat.max() - lat.min()), 0.5)
    by_width = np.log2(width_px * 360 / (512 * lon_span))
    by_height = np.log2(height_px * 360 * np.cos(np.radians(mid_lat)) / (512 * lat_span))
    zoom = float(np.clip(min(by_width, by_height) - 0.25, 1, 10))  # a margin so edge sites are not cut
    return pdk.ViewState(latitude=mid_lat, longitude=float((lon.max() + lon.min()) / 2), zoom=zoom, pitch=0)


class Map(pdk.Deck):
    """A deck serialised compactly: pydeck indents its JSON (1.6 MB for the lab's map, in Python's
    slow encoder: 0.2 s a redraw); without indent it is a quarter of the size and C-encoded."""

    def to_json(self) -> str:
        from pydeck.bindings.json_tools import default_serialize

        return json.dumps(self, sort_keys=True, default=default_serialize, separators=(",", ":"))


def outline_box(sites: pd.DataFrame) -> tuple[float, float, float, float]:
    """The region a map of ``sites`` draws borders for: their box, padded by half its size (at
    least 8 degrees), in whole degrees (maps of one dataset share it, and its cached outlines)."""
    lon, lat = sites["lon"].astype(float), sites["lat"].astype(float)
    pad_lon = max(8.0, 0.5 * float(lon.max() - lon.min()))
    pad_lat = max(8.0, 0.5 * float(lat.max() - lat.min()))
    return (
        float(np.floor(max(-180.0, lon.min() - pad_lon))),
        float(np.floor(max(-90.0, lat.min() - pad_lat))),
        float(np.ceil(min(180.0, lon.max() + pad_lon))),
        float(np.ceil(min(90.0, lat.max() + pad_lat))),
    )


def outline_layers(box: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)) -> list[pdk.Layer]:
    """Country and US state borders shipped with the app, so the map reads with no tiles: those in
    ``box``, thinned to what a map of that size can show (a 600th of its width)."""
    tolerance = round((box[2] - box[0]) / 600, 3)
    layers = []
    for name, color, width in (("world", [100, 116, 139, 160], 1), ("us", [148, 163, 184, 140], 0.6)):
        paths = [{"path": p} for p in outline_paths_near(name, box, tolerance)]
        layers.append(
            pdk.Layer(
                "PathLayer",
                id=f"outline-{name}",
                data=paths,
                get_path="path",
                get_color=color,
                width_min_pixels=width,
                pickable=False,
            )
        )
    return layers


# deck.gl draws a tooltip to the right of the pointer and the map's edge cuts it: the box of a point
# in the map's eastern part opens to the left instead (the outer tooltip is transparent, the inner
# box carries the colours and is shifted by its own width).
TOOLTIP_STYLE = {"backgroundColor": "transparent", "padding": "0", "color": "white", "fontSize": "12px"}
_TIP_BOX = "background:#0F172A;padding:8px 10px;border-radius:4px;max-width:340px;transform:{tip_shift}"


def tooltip_html(body: str) -> str:
    """A tooltip template whose box opens left or right of the pointer per object (``tip_shift``)."""
    return f'<div style="{_TIP_BOX}">{body}</div>'


def tip_shift(lon: pd.Series, sites: pd.DataFrame) -> list[str]:
    """Per object: open its tooltip to the left when it lies in the eastern 45 % of the sites' span."""
    west, east = float(sites["lon"].min()), float(sites["lon"].max())
    share = (lon.astype(float) - west) / max(east - west, 1e-9)
    return ["translateX(calc(-100% - 16px))" if x > 0.55 else "none" for x in share]


def network_map(
    site_kpis: pd.DataFrame, color_by: str = "status", selected: str | None = None, width_px: int = 1200
) -> pdk.Deck:
    """Sites sized by stock value and coloured by status or value at risk.

    ``site_kpis`` is :func:`rebal_core.positions.site_summary`'s output. Names
    are HTML-escaped because the tooltip renders HTML.
    """
    data = site_kpis.copy()
    value = data["stock_value"].to_numpy(float)
    data["radius"] = 6000 + 60000 * np.sqrt(value / max(value.max(), 1.0))
    if color_by == "status":
        data["color"] = [SITE_STATUS_RGB.get(s, [100, 116, 139]) + [210] for s in data["status"]]
    else:
        risk = data["value_at_risk"].to_numpy(float)
        share = risk / max(risk.max(), 1.0)
        data["color"] = [[int(250 - 30 * s), int(200 - 170 * s), int(80 - 50 * s), 215] for s in share]
    data["line"] = [[15, 23, 42, 255] if sid == selected else [255, 255, 255, 220] for sid in data["site_id"]]
    data["label"] = [html.escape(str(n)) for n in data["name"]]
    data["region_label"] = [html.escape(str(r)) for r in data["region"]]
    for col, fmt in (
        ("stock_value", money),
        ("shortage_value", money),
        ("excess_value", money),
        ("value_at_risk", money),
    ):
        data[f"{col}_txt"] = [fmt(v) for v in data[col]]
    data["fill_txt"] = [f"{v:.1%}" for v in data["fill_rate"]]
    data["cover_txt"] = [f"{v:,.0f} d" if np.isfinite(v) else "-" for v in data["days_of_cover"]]
    data["tip_shift"] = tip_shift(data["lon"], data)
    columns = [
        "site_id",
        "label",
        "kind",
        "region_label",
        "lat",
        "lon",
        "radius",
        "color",
        "line",
        "status",
        "at_risk",
        "in_excess",
        "positions",
        "tip_shift",
    ] + [c for c in data.columns if c.endswith("_txt")]
    sites_layer = pdk.Layer(
        "ScatterplotLayer",
        id="sites",
        data=data[columns],
        get_position="[lon, lat]",
        get_radius="radius",
        get_fill_color="color",
        get_line_color="line",
        line_width_min_pixels=1.5,
        stroked=True,
        radius_min_pixels=4,
        radius_max_pixels=40,
        pickable=True,
        auto_highlight=True,
    )
    tooltip = {
        "html": tooltip_html(
            "<b>{label}</b> ({kind}, {region_label})<br/>"
            "Stock {stock_value_txt} · fill rate {fill_txt} · cover {cover_txt}<br/>"
            "Shortage {shortage_value_txt} · excess {excess_value_txt}<br/>"
            "{at_risk} of {positions} positions at stockout risk, {in_excess} in excess"
        ),
        "style": TOOLTIP_STYLE,
    }
    return Map(
        layers=[*outline_layers(outline_box(site_kpis)), sites_layer],
        initial_view_state=view_for(site_kpis, width_px),
        map_provider=None,
        tooltip=tooltip,
    )


HEATMAP_METRICS = {
    "value at risk": ("value_at_risk", "Shortage + excess value ($)", "Reds"),
    "shortage value": ("shortage_value", "Shortage value ($)", "Reds"),
    "excess value": ("excess_value", "Excess value ($)", "Blues"),
    "days of cover against target": ("cover_vs_target_days", "Days of cover minus target cover (days)", "RdBu"),
}


def heatmap(cells: pd.DataFrame, metric: str, site_names: dict[str, str]) -> go.Figure:
    """Site x category heatmap of a :func:`rebal_core.positions.summarize` table."""
    column, title, scale = HEATMAP_METRICS[metric]
    grid = cells.pivot_table(index="site_id", columns="category", values=column, aggfunc="sum", observed=True)
    order = cells.groupby("site_id", observed=True)["value_at_risk"].sum().sort_values(ascending=False).index
    grid = grid.reindex([s for s in order if s in grid.index])
    labels = [text_label(f"{site_names.get(s, s)} ({s})") for s in grid.index]
    z = grid.to_numpy(float)
    kwargs: dict = {"colorscale": scale}
    if column == "cover_vs_target_days":
        limit = float(np.nanpercentile(np.abs(z), 95)) if np.isfinite(z).any() else 1.0
        kwargs.update(zmid=0, zmin=-limit, zmax=limit, reversescale=False)
        hover = "%{y}<br>%{x}<br>%{z:+.0f} days against target<extra></extra>"
    else:
        hover = "%{y}<br>%{x}<br>$%{z:,.0f}<extra></extra>"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(grid.columns),
            y=labels,
            hovertemplate=hover,
            colorbar={"title": {"text": title, "side": "right"}},
            **kwargs,
        )
    )
    fig.update_layout(
        height=max(360, 22 * len(labels) + 120),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        yaxis={"autorange": "reversed"},
        title=title,
    )
    return fig


def status_bar(pos: pd.DataFrame) -> go.Figure:
    """Positions by status class, one horizontal stacked bar per region."""
    counts = pos.groupby(["region", "status"], observed=True).size().unstack(fill_value=0)
    fig = go.Figure()
    for status, label in STATUS_LABELS.items():
        if status in counts.columns:
            fig.add_bar(
                y=counts.index, x=counts[status], name=label, orientation="h", marker_color=STATUS_COLORS[status]
            )
    fig.update_layout(
        barmode="stack",
        height=80 + 40 * len(counts),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.25},
        xaxis_title="positions",
    )
    return fig


def projection_figure(
    history: pd.DataFrame, projection: pd.DataFrame, position: pd.Series, history_days: int = 120
) -> go.Figure:
    """History, forecast, projected stock and safety-stock / target / excess bands of one position.

    The bands use the position's scenario levels; the projected stock line shows
    when it crosses zero (stockout) or the excess level.
    """
    fig = go.Figure()
    start = projection["date"].iloc[0]
    hist = history[history["date"] >= start - pd.Timedelta(days=history_days)]
    if not hist.empty:
        days = pd.date_range(start - pd.Timedelta(days=history_days), start - pd.Timedelta(days=1))
        daily = hist.set_index("date")["qty"].reindex(days, fill_value=0)
        fig.add_bar(
            x=daily.index, y=daily.to_numpy(), name="demand (history)", marker_color="#94A3B8", yaxis="y2", opacity=0.6
        )
    end = projection["date"].iloc[-1]
    m = float(position["mean_daily"])
    shown_days = hist["qty"].max() if not hist.empty else 0.0
    per_day_top = max(float(shown_days), m, 1.0) * 1.15  # the second axis starts at 0 too
    fig.add_trace(
        go.Scatter(
            x=[start, end],
            y=[m, m],
            name="forecast (units/day)",
            mode="lines",
            line={"color": "#64748B", "dash": "dot"},
            yaxis="y2",
        )
    )
    ss, target, xlevel = float(position["safety_stock"]), float(position["target"]), float(position["excess_level"])
    lost = projection["lost"] if "lost" in projection else pd.Series(0.0, index=projection.index)
    top = max(xlevel * 1.15, float(projection["projected"].max()) * 1.1, float(lost.max()) * 1.1, target * 1.3, 1.0)
    bottom = 0.0  # stock floors at 0; what demand it cannot serve is drawn as lost sales
    bands = [
        (0, ss, "rgba(245,158,11,0.12)", "below safety stock"),
        (target, xlevel, "rgba(15,118,110,0.08)", "target to excess level"),
        (xlevel, top, "rgba(37,99,235,0.10)", "excess"),
    ]
    for lo, hi, color, label in bands:
        if hi > lo:
            fig.add_hrect(
                y0=lo,
                y1=hi,
                fillcolor=color,
                line_width=0,
                annotation_text=label,
                annotation_position="top left",
                annotation_font_size=10,
            )
    for level, _label, color in (
        (ss, "safety stock", "#F59E0B"),
        (target, "target", "#0F766E"),
        (xlevel, "excess level", "#2563EB"),
    ):
        fig.add_hline(y=level, line={"color": color, "width": 1, "dash": "dash"})
    fig.add_trace(
        go.Scatter(
            x=projection["date"],
            y=projection["projected"],
            name="projected stock",
            mode="lines",
            line={"color": "#0F172A", "width": 2.5},
        )
    )
    if float(lost.max()) > 0:
        fig.add_trace(
            go.Scatter(
                x=projection["date"],
                y=lost,
                name="lost sales (cumulative units)",
                mode="lines",
                line={"color": "#DC2626", "width": 2, "dash": "dash"},
                fill="tozeroy",
                fillcolor="rgba(220,38,38,0.08)",
            )
        )
    arrivals = projection[projection["arrivals"] > 0]
    if not arrivals.empty:
        fig.add_trace(
            go.Scatter(
                x=arrivals["date"],
                y=projection.loc[arrivals.index, "projected"],
                mode="markers",
                name="inbound arrives",
                marker={"symbol": "triangle-up", "size": 11, "color": "#0F766E"},
            )
        )
    for column, label, color in (
        ("days_until_stockout", "stockout", "#DC2626"),
        ("days_until_excess", "excess", "#2563EB"),
    ):
        value = position.get(column)
        if value is not None and np.isfinite(value):
            when = start + pd.Timedelta(days=float(value))
            fig.add_vline(x=when, line={"color": color, "width": 2})
            fig.add_annotation(
                x=when, y=top, text=f"{label} in {value:.0f} d", showarrow=False, yanchor="top", font={"color": color}
            )
    fig.update_layout(
        height=430,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"title": "units in stock", "range": [bottom, top]},
        yaxis2={"title": "units/day", "overlaying": "y", "side": "right", "showgrid": False, "range": [0, per_day_top]},
        legend={"orientation": "h", "y": -0.15},
        title=f"{position['site_name']} · {position['sku_name']} ({position['sku_id']})",
    )
    return fig


# ----------------------------------------------------------------------------- plans


def cost_waterfall(
    summary: PlanSummary, title: str = "Network cost: inaction to plan", y_max: float | None = None
) -> go.Figure:
    """Inaction -> + transfer cost -> - shortage avoided -> - excess avoided -> after (``Plan.summary()``)."""
    shortage_avoided = summary.shortage_cost_before - summary.shortage_cost_after
    excess_avoided = summary.excess_cost_before - summary.excess_cost_after
    fig = go.Figure(
        go.Waterfall(
            x=["cost of inaction", "transfer cost", "shortage avoided", "excess avoided", "after the plan"]
            if summary.objective == "target"
            else [
                "cost of inaction",
                "transfer cost",
                "expected lost margin avoided",
                "expected excess avoided",
                "after the plan",
            ],
            measure=["absolute", "relative", "relative", "relative", "total"],
            y=[
                summary.network_cost_before,
                summary.transfer_cost,
                -shortage_avoided,
                -excess_avoided,
                summary.network_cost_after,
            ],
            text=[
                money(summary.network_cost_before),
                signed_money(summary.transfer_cost),
                signed_money(-shortage_avoided),
                signed_money(-excess_avoided),
                money(summary.network_cost_after),
            ],
            textposition="outside",
            increasing={"marker": {"color": "#DC2626"}},
            decreasing={"marker": {"color": "#0F766E"}},
            totals={"marker": {"color": "#334155"}},
            connector={"line": {"color": "#94A3B8"}},
        )
    )
    fig.update_layout(
        title=title, height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, yaxis_title="$", showlegend=False
    )
    top = y_max if y_max is not None else waterfall_top([summary])
    fig.update_yaxes(range=[0, top])  # from 0; plans side by side pass one top so their bars compare
    return fig


def waterfall_top(summaries: list[PlanSummary]) -> float:
    """The value axis top that fits every plan's waterfall (inaction plus its transfer cost), with room for labels."""
    tops = [s.network_cost_before + max(s.transfer_cost, 0.0) for s in summaries if s is not None]
    return max(tops, default=1.0) * 1.12 or 1.0


def transfer_map(
    site_kpis: pd.DataFrame, plan_table: pd.DataFrame, sites: pd.DataFrame, width_px: int = 1200
) -> pdk.Deck:
    """The sites map with one arc per lane used, width by units moved (aggregated per lane, not per line)."""
    deck = network_map(site_kpis, width_px=width_px)
    if plan_table.empty:
        return deck
    per_lane = plan_table.groupby(["from_site_id", "to_site_id"], as_index=False).agg(
        units=("qty", "sum"), lines=("qty", "size"), cost=("line_cost", "sum")
    )
    at = sites.set_index("site_id")
    per_lane["from_lon"], per_lane["from_lat"] = (
        per_lane["from_site_id"].map(at["lon"]),
        per_lane["from_site_id"].map(at["lat"]),
    )
    per_lane["to_lon"], per_lane["to_lat"] = (
        per_lane["to_site_id"].map(at["lon"]),
        per_lane["to_site_id"].map(at["lat"]),
    )
    per_lane["width"] = 1.5 + 8 * np.sqrt(per_lane["units"] / max(per_lane["units"].max(), 1))
    per_lane["label"] = [
        f"{html.escape(str(at['name'].get(a, a)))} &rarr; {html.escape(str(at['name'].get(b, b)))}"
        for a, b in zip(per_lane["from_site_id"], per_lane["to_site_id"])
    ]
    per_lane["tip_shift"] = tip_shift((per_lane["from_lon"] + per_lane["to_lon"]) / 2, sites)
    per_lane["units_txt"] = [
        f"{u:,.0f} units in {n} lines, {money(c)}"
        for u, n, c in zip(per_lane["units"], per_lane["lines"], per_lane["cost"])
    ]
    arcs = pdk.Layer(
        "ArcLayer",
        id="transfers",
        data=per_lane,
        get_source_position="[from_lon, from_lat]",
        get_target_position="[to_lon, to_lat]",
        get_source_color=[37, 99, 235, 200],
        get_target_color=[220, 38, 38, 220],
        get_width="width",
        pickable=True,
        auto_highlight=True,
    )
    # Site tooltips and arc tooltips share one template: fields a layer lacks render empty.
    tooltip = {"html": tooltip_html("<b>{label}</b> {units_txt}"), "style": TOOLTIP_STYLE}
    return Map(
        layers=[*deck.layers, arcs], initial_view_state=deck.initial_view_state, map_provider=None, tooltip=tooltip
    )


# ----------------------------------------------------------------------------- comparing plans


def compare_bars(values: dict[str, float], title: str, percent: bool = False) -> go.Figure:
    """One bar per plan (fill rate, transfer spend...), labelled with its value."""
    names = list(values)
    y = [values[n] for n in names]
    text = [f"{v:.2%}" if percent else money(v) for v in y]
    fig = go.Figure(
        go.Bar(x=[text_label(n) for n in names], y=y, text=text, textposition="outside", marker_color="#2563EB")
    )
    if percent:
        fig.update_yaxes(range=[0, 1.0], tickformat=".0%")  # from 0: a cut axis makes 94 % look like half of 98 %
    else:
        fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False)
    return fig


def region_units_figure(units: pd.DataFrame) -> go.Figure:
    """Units moved into each region, grouped bars per plan (``compare.units_by_region``)."""
    fig = go.Figure()
    for name, part in units.groupby("scenario", sort=False):
        fig.add_bar(x=[text_label(r) for r in part["region"]], y=part["units"], name=text_label(name))
    fig.update_layout(
        title="Units moved by receiving region",
        barmode="group",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis_title="units",
        legend={"orientation": "h"},
    )
    return fig


def tradeoff_figure(sweep: pd.DataFrame) -> go.Figure:
    """Transfer cost and network cost against expected fill rate across the swept settings; the Pareto front marked."""
    fig = go.Figure()
    if sweep.empty:
        return fig
    label = (
        sweep["setting"].tolist() if "setting" in sweep else [f"service level {s:.1%}" for s in sweep["service_level"]]
    )
    swept = sweep["target_fill_rate"] if "target_fill_rate" in sweep else sweep["service_level"]
    front = sweep[sweep["pareto"]].sort_values("fill_rate_after")
    fig.add_scatter(
        x=front["fill_rate_after"],
        y=front["transfer_cost"],
        mode="lines",
        name="Pareto front (transfer cost)",
        line={"color": "#2563EB", "width": 3},
    )
    fig.add_scatter(
        x=sweep["fill_rate_after"], y=sweep["transfer_cost"], mode="markers+text", name="transfer cost",
        text=[f"{s:.1%}" for s in swept], textposition="top center", customdata=label,
        marker={"size": 10, "color": np.where(sweep["pareto"], "#2563EB", "#94A3B8")},
        hovertemplate="%{customdata}<br>fill rate %{x:.2%}<br>transfer cost $%{y:,.0f}<extra></extra>",
    )  # fmt: skip
    fig.add_scatter(
        x=sweep["fill_rate_after"], y=sweep["network_cost_after"], mode="markers+lines", name="network cost", yaxis="y2", customdata=label,
        marker={"size": 8, "color": "#DC2626", "symbol": "diamond"}, line={"color": "#DC2626", "dash": "dot"},
        hovertemplate="%{customdata}<br>fill rate %{x:.2%}<br>network cost $%{y:,.0f}<extra></extra>",
    )  # fmt: skip
    fig.update_layout(
        title="What service costs: transfer and network cost against expected fill rate",
        xaxis={"title": "expected fill rate after the plan", "tickformat": ".1%"},
        yaxis={"title": "transfer cost ($)"},
        yaxis2={"title": "network cost ($)", "overlaying": "y", "side": "right"},
        height=420, margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2},
    )  # fmt: skip
    return fig


def uncertainty_bands(
    bands_by_plan: dict[str, pd.DataFrame], figure: str, title: str, percent: bool = False
) -> go.Figure:
    """Monte Carlo p5-p95 (thin) and p25-p75 (thick) ranges with the median, without and with each plan."""
    fig = go.Figure()
    rows = []
    for name, b in bands_by_plan.items():
        for tag, label in (("before", "no transfers"), ("after", name)):
            r = b.loc[f"{figure}_{tag}"]
            if tag == "before" and rows and any(lbl == label for lbl, _ in rows):
                continue
            rows.append((label, r))
    colors = {"no transfers": "#94A3B8"}
    for label, r in rows:
        color = colors.get(label, "#2563EB")
        label = text_label(label)
        fig.add_scatter(
            x=[r["p5"], r["p95"]],
            y=[label, label],
            mode="lines",
            line={"color": color, "width": 3},
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_scatter(
            x=[r["p25"], r["p75"]],
            y=[label, label],
            mode="lines",
            line={"color": color, "width": 12},
            showlegend=False,
            hoverinfo="skip",
        )
        text = f"{r['p50']:.2%}" if percent else money(r["p50"])
        fig.add_scatter(
            x=[r["p50"]],
            y=[label],
            mode="markers+text",
            marker={"color": "#0F172A", "size": 10, "symbol": "line-ns-open"},
            text=[text],
            textposition="top center",
            showlegend=False,
            hovertemplate=f"{label}<br>median {text}<extra></extra>",
        )
    fig.update_layout(
        title=title,
        height=110 + 45 * len(rows),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"tickformat": ".1%" if percent else "$,.0f"},
    )
    return fig


ARM_COLORS = {"none": "#94A3B8", "greedy": "#F59E0B", "optimize": "#2563EB", "hindsight": "#16A34A"}


def backtest_figures(periods: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """Realized fill rate per period, and cumulative lost value + transfer spend, one line per arm."""
    fill, money_fig = go.Figure(), go.Figure()
    for arm, part in periods.groupby("arm", sort=False):
        color = ARM_COLORS.get(str(arm), "#0F172A")
        fill.add_scatter(
            x=part["period_start"], y=part["fill_rate"], mode="lines+markers", name=str(arm), line={"color": color}
        )
        cost = (part["lost_value"] + part["transfer_spend"]).cumsum()
        money_fig.add_scatter(
            x=part["period_start"],
            y=cost,
            mode="lines",
            name=f"{arm}: lost value + transfer spend",
            line={"color": color},
        )
    fill.update_layout(
        title="Realized fill rate per replay period",
        yaxis={"tickformat": ".1%"},
        height=340,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    money_fig.update_layout(
        title="Cumulative cost: lost sales value + transfer spend",
        yaxis={"tickformat": "$,.0f"},
        height=340,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    return fill, money_fig


def promise_figure(periods: pd.DataFrame) -> go.Figure:
    """Cumulative promised against realised net value per arm (calibration: the lines should meet)."""
    fig = go.Figure()
    for arm, part in periods.groupby("arm", sort=False):
        if arm == "none":
            continue
        color = ARM_COLORS.get(str(arm), "#0F172A")
        fig.add_scatter(
            x=part["period_start"],
            y=part["realised_net"].cumsum(),
            mode="lines",
            name=f"{arm}: realised",
            line={"color": color},
        )
        if arm != "hindsight":
            fig.add_scatter(
                x=part["period_start"],
                y=part["promised_net"].cumsum(),
                mode="lines",
                name=f"{arm}: promised",
                line={"color": color, "dash": "dash"},
            )
    fig.add_hline(y=0, line={"color": "#64748B", "width": 1})
    fig.update_layout(
        title="Promised against realised: cumulative net value against no rebalancing",
        yaxis={"tickformat": "$,.0f"},
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


TREND_FIELDS = {
    "network_cost": ("Network cost of inaction", "money"),
    "fill_rate": ("Expected fill rate", "rate"),
    "turns": ("Inventory turns", "count"),
}


def trend_figure(trend: pd.DataFrame, field: str) -> go.Figure:
    """One KPI across snapshots (:func:`rebal_core.execution.outcomes.snapshot_trend`): dates on the
    x axis (days, never clock times), the value axis from 0 (a fill rate up to 100 %). With one
    snapshot the point sits in a two-week window, not on an axis stretched around midnight."""
    title, kind = TREND_FIELDS[field]
    dates = pd.to_datetime(trend["as_of"])
    fig = go.Figure(
        go.Scatter(
            x=dates,
            y=trend[field],
            mode="lines+markers",
            text=[plain(s) for s in trend["snapshot"]],
            hovertemplate="%{text}<br>%{x|%Y-%m-%d}: %{y}<extra></extra>",
        )
    )
    values = trend[field].astype(float)
    top = float(values.max()) if len(values) and np.isfinite(values.max()) else 1.0
    yaxis: dict = {"rangemode": "tozero", "title": None}
    if kind == "rate":
        yaxis.update(range=[0, 1.0], tickformat=".0%")
    elif kind == "money":
        yaxis.update(range=[0, top * 1.15 or 1.0], tickprefix="$", tickformat="~s")
    else:
        yaxis.update(range=[0, top * 1.15 or 1.0], tickformat=".1f")
    xaxis: dict = {"type": "date", "tickformat": "%Y-%m-%d"}
    if len(dates) == 1:
        day = dates.iloc[0]
        xaxis.update(range=[day - pd.Timedelta(days=7), day + pd.Timedelta(days=7)], dtick=7 * 86_400_000)
    fig.update_layout(title=title, height=280, margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis=xaxis, yaxis=yaxis)
    return fig


STATUS_WORDS = {
    "short": ("red", "shortage dominates"),
    "mixed": ("orange", "shortage and excess"),
    "excess": ("blue", "excess dominates"),
    "balanced": ("green", "balanced"),
}


def map_legend(color_by: str, site_kpis: pd.DataFrame) -> str:
    """The map's legend in Streamlit markdown (colours match SITE_STATUS_RGB), with how many sites and
    how much value at risk each status holds, the worst first; or the value-at-risk scale."""
    if color_by != "status":
        top = float(site_kpis["value_at_risk"].max()) if len(site_kpis) else 0.0
        return f":orange[●] little value at risk → :red[●] {money(top)} at the worst site · size: stock value"
    parts = []
    grouped = site_kpis.groupby("status")["value_at_risk"].agg(["size", "sum"]).sort_values("sum", ascending=False)
    for status, row in grouped.iterrows():
        colour, words = STATUS_WORDS.get(status, ("gray", str(status)))
        parts.append(f":{colour}[●] {words}: {int(row['size'])} site(s), {money(float(row['sum']))} at risk")
    return " · ".join(parts) + " · size: stock value"
