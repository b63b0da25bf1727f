"""Backtest: replay history and see what rebalancing would have earned, against none and the greedy rule."""

import streamlit as st

from pages.components import state, widgets
from rebal_core import store
from rebal_core.backtest import Replay, backtest, totals
from rebal_core.figures import backtest_figures, money
from rebal_core.scenario import Scenario

st.set_page_config(page_title="Backtest - Rebal", layout="wide")
st.title("Backtest")
dataset, net, pos = state.require_dataset()
engine, v = state.engine(), state.version(dataset)


@st.cache_data(show_spinner="Reading the demand history...", max_entries=2)
def history(dataset_id: int, version: str):  # noqa: ARG001 - version keys the cache
    return store.read_table(engine=engine, dataset_id=dataset_id, table="demand")


st.caption("Every N days each arm plans with only what was known then (forecast from the last weeks), then the actual demand plays forward. "
           "The same replenishment runs in every arm; the rules are in the README (Backtest).")
demand = history(dataset.id, v)
span = (demand["date"].max() - demand["date"].min()).days + 1
c1, c2, c3 = st.columns(3)
lookback = c1.slider("Forecast lookback (days)", 14, 112, 56, 7, key="bt-lookback")
days = c2.slider("Days replayed", 14, max(14, min(728, span - lookback)), max(14, min(364, span - lookback)), 7, key="bt-days")
every = c3.slider("Plan every (days)", 1, 28, 7, key="bt-every")
c4, c5, c6 = st.columns(3)
supply = c4.slider("Supplier lead time (days)", 1, 60, 14, key="bt-supply")
replenish = c5.toggle("Replenish from suppliers", value=True, key="bt-replenish")
limit = c6.select_slider("Optimizer seconds per planning day", [0.5, 1.0, 2.0, 5.0], value=1.0, key="bt-tl")
sl = st.slider("Service level", 0.80, 0.995, 0.95, 0.005, key="bt-sl")
if st.button("Run the backtest", type="primary", key="bt-run"):
    bar = st.progress(0.0, text="Replaying...")
    periods = backtest(net, demand, Scenario(service_level=sl), Replay(days=days, every=every, lookback=lookback, supply_lead=supply, replenish=replenish, time_limit=float(limit)),
                       progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
    bar.empty()
    st.session_state["bt_result"] = dataset.id, periods
ran_on, periods = st.session_state.get("bt_result", (None, None))
if periods is not None and ran_on == dataset.id:
    t = totals(periods)
    by = t.set_index("arm")
    if {"none", "optimize"} <= set(by.index):
        k = st.columns(3)
        k[0].metric("Realized fill rate, optimized", f"{by.loc['optimize', 'fill_rate']:.2%}", delta=f"{(by.loc['optimize', 'fill_rate'] - by.loc['none', 'fill_rate']) * 100:+.2f} pts vs none")
        k[1].metric("Lost sales avoided", money(by.loc["none", "lost_value"] - by.loc["optimize", "lost_value"]), help=f"for {money(by.loc['optimize', 'transfer_spend'])} of transfers")
        k[2].metric("Net gain vs no rebalancing", money(by.loc["optimize", "net_gain_vs_none"]),
                    help=f"greedy rule: {money(by.loc['greedy', 'net_gain_vs_none'])}" if "greedy" in by.index else None)
    st.dataframe(t, hide_index=True, width="stretch", key="bt-totals")
    f1, f2 = backtest_figures(periods)
    left, right = st.columns(2)
    left.plotly_chart(f1, width="stretch", key="bt-fill")
    right.plotly_chart(f2, width="stretch", key="bt-cost")
    widgets.download_csv(periods, "backtest.csv", "Download every arm and period", key="bt-csv")
