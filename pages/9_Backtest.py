"""Backtest: replay history and see what rebalancing would have earned, against none and the greedy rule."""

import pandas as pd
import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import Replay, Scenario, backtest, totals
from rebal_core.views.figures import backtest_figures, money, promise_figure
from rebal_core.views.tables import BACKTEST_COLUMNS, in_order

st.set_page_config(page_title="Backtest - Rebal", layout="wide")
st.title("Backtest")
dataset, net, pos = state.require_dataset()
engine, v = state.engine(), state.version(dataset)


@st.cache_data(show_spinner="Reading the demand history...", max_entries=2)
def history(dataset_id: int, version: str):  # noqa: ARG001 - version keys the cache
    return services.demand_history(engine=engine, dataset_id=dataset_id)


st.caption(
    "Every N days each arm plans with only what was known then (forecast from the last weeks), then the actual demand plays forward. "
    "Hindsight plans with the same rules knowing each window's real demand: the most a plan could have earned. The same replenishment runs in every arm "
    "(each item's replenishment time when the data gives one); the rules are in the README (Backtest)."
)
known = services.demand_span(engine=engine, dataset_id=dataset.id)  # sliders at once; the history is read on Run
span = (known[1] - known[0]).days + 1 if known else 14
c1, c2, c3 = st.columns(3)
lookback = c1.slider("Forecast lookback (days)", 14, 112, 56, 7, key="bt-lookback")
days = c2.slider(
    "Days replayed", 14, max(14, min(728, span - lookback)), max(14, min(364, span - lookback)), 7, key="bt-days"
)
every = c3.slider("Plan every (days)", 1, 28, 7, key="bt-every")
c4, c5, c6 = st.columns(3)
supply = c4.slider(
    "Supplier lead time (days; used when the data gives no replenishment times)", 1, 60, 14, key="bt-supply"
)
replenish = c5.toggle("Replenish from suppliers", value=True, key="bt-replenish")
limit = c6.select_slider("Optimizer seconds per planning day", [0.5, 1.0, 2.0, 5.0], value=1.0, key="bt-tl")
sl = st.slider("Service level", 0.80, 0.995, 0.95, 0.005, key="bt-sl")
run_col, stop_col = st.columns([3, 1])
if stop_col.button("Stop", key="bt-stop", help="Interrupts a running backtest (at its next progress step)"):
    st.info("Backtest stopped. Change the settings and run it again.")
elif run_col.button("Run the backtest", type="primary", key="bt-run"):
    demand = history(dataset.id, v)
    bar = st.progress(0.0, text="Replaying...")
    periods = backtest(
        net,
        demand,
        Scenario(service_level=sl),
        Replay(
            days=days, every=every, lookback=lookback, supply_lead=supply, replenish=replenish, time_limit=float(limit)
        ),
        progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
    )
    bar.empty()
    st.session_state["bt_result"] = dataset.id, periods
ran_on, periods = st.session_state.get("bt_result", (None, None))
if periods is not None and ran_on == dataset.id:
    t = totals(periods)
    by = t.set_index("arm")
    if {"none", "optimize"} <= set(by.index):
        k = st.columns(4)
        opt = by.loc["optimize"]
        k[0].metric(
            "Realised net vs no rebalancing",
            money(opt["realised_net"]),
            help="Lost sales value avoided against none, less transfer spend"
            + (f"; greedy rule: {money(by.loc['greedy', 'realised_net'])}" if "greedy" in by.index else ""),
        )
        k[1].metric(
            "Promised by the plans",
            money(opt["promised_net"]),
            delta=f"realised {opt['realised_over_promised']:.0%} of it"
            if opt["realised_over_promised"] == opt["realised_over_promised"]
            else None,
            delta_color="off",
            help="Each plan's own net benefit (expected lost margin and excess avoided, less transfer cost), summed over the planning days",
        )
        if "hindsight" in by.index:
            k[2].metric(
                "Share of hindsight captured",
                f"{opt['share_of_hindsight']:.0%}" if opt["share_of_hindsight"] == opt["share_of_hindsight"] else "n/a",
                help=f"Hindsight (the same constraints, knowing each window's real demand) realised {money(by.loc['hindsight', 'realised_net'])}",
            )
        k[3].metric(
            "Realised fill rate, optimized",
            f"{opt['fill_rate']:.2%}",
            delta=f"{(opt['fill_rate'] - by.loc['none', 'fill_rate']) * 100:+.2f} pts vs none",
        )
        if pd.notna(opt.get("inside_80")):
            st.caption(
                f"Forecast calibration: the actual demand over each position's horizon fell inside the 80 % interval the plans priced for "
                f"{opt['inside_80']:.0%} of positions and inside the 95 % interval for {opt['inside_95']:.0%} (well calibrated: 80 % and 95 %)."
            )
        if opt["realised_net"] < 0:
            st.warning(
                "On this history the optimizer's transfers did not pay: keep planning with care, or check the lane costs and the forecast."
            )
    st.dataframe(
        in_order(t, BACKTEST_COLUMNS),
        hide_index=True,
        width="stretch",
        key="bt-totals",
        column_config=widgets.column_config(BACKTEST_COLUMNS),
    )
    f1, f2 = backtest_figures(periods)
    left, right = st.columns(2)
    left.plotly_chart(f1, width="stretch", key="bt-fill")
    right.plotly_chart(f2, width="stretch", key="bt-cost")
    if "realised_net" in periods:
        st.plotly_chart(promise_figure(periods), width="stretch", key="bt-promise")
    widgets.download_csv(periods, "backtest.csv", "Download every arm and period", key="bt-csv")
