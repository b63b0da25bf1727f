"""Backtest: replay history and see what rebalancing would have earned, against none and the greedy rule."""

import pandas as pd
import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import Replay, Scenario, backtest, jobs, totals
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
if span < 35:
    st.info(
        f"This dataset has {span} day(s) of demand history: a replay needs at least 5 weeks (3 to forecast from, 2 to replay)."
    )
    st.stop()
c1, c2, c3 = st.columns(3)
lookback = c1.slider(
    "Forecast lookback (days)", 14, max(21, min(112, span - 14)), min(56, span - 14), 7, key="bt-lookback"
)
room = span - lookback  # days left to replay after the first forecast's lookback
if room > 14:
    days = c2.slider("Days replayed", 14, min(728, room), max(14, min(364, room)), 7, key="bt-days")
else:
    days = 14
    c2.caption("Days replayed: 14 (all the history allows with this lookback)")
every = c3.slider("Plan every (days)", 1, 28, 7, key="bt-every")
c4, c5, c6 = st.columns(3)
supply = c4.slider(
    "Supplier lead time (days; used when the data gives no replenishment times)", 1, 60, 14, key="bt-supply"
)
replenish = c5.toggle("Replenish from suppliers", value=True, key="bt-replenish")
limit = c6.select_slider("Optimizer seconds per planning day", [0.5, 1.0, 2.0, 5.0], value=1.0, key="bt-tl")
sl = st.slider("Service level", 0.80, 0.995, 0.95, 0.005, key="bt-sl")
scenario = Scenario(service_level=sl)
replay = Replay(
    days=days, every=every, lookback=lookback, supply_lead=supply, replenish=replenish, time_limit=float(limit)
)
as_job = jobs.runs_as_job(replay)
if as_job:
    st.caption(
        f"Up to {jobs.backtest_solve_seconds(replay) / 60:.0f} minutes of solves: it runs as a job on the server. "
        "Leave the page or reload it, the job goes on; anyone opening this page sees it."
    )
run_col, stop_col = st.columns([3, 1])
if stop_col.button("Stop", key="bt-stop", help="Interrupts a running backtest (at its next progress step)"):
    shown = st.session_state.get("bt_shown")
    if shown and shown[0] == "job":
        jobs.request_stop(engine=engine, actor=state.actor(), job_id=shown[1])
    st.info("Backtest stopped. Change the settings and run it again.")
elif run_col.button("Run the backtest", type="primary", key="bt-run"):
    if as_job:
        view, new = jobs.submit_backtest(
            engine=engine, actor=state.actor(), dataset_id=dataset.id, scenario=scenario, replay=replay
        )
        st.session_state["bt_shown"] = ("job", view.id)
        if not new:
            st.info(f"The same backtest is already running (started by {view.created_by}): showing it.")
    else:
        demand = history(dataset.id, v)
        bar = st.progress(0.0, text="Replaying...")
        periods = backtest(net, demand, scenario, replay, progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
        bar.empty()
        st.session_state["bt_shown"] = ("local", dataset.id, periods)


@st.fragment(run_every=1.0)
def job_progress(job_id: int) -> None:
    """A running job's progress, read from the store every second; the page redraws when it ends."""
    view = jobs.job(engine=engine, job_id=job_id)
    if view is None or not view.active:
        st.rerun()
    st.progress(min(view.progress, 1.0), text=f"Job {view.id} ({view.created_by}): {view.message or view.status}")


shown = st.session_state.get("bt_shown")
if shown is None or (shown[0] == "local" and shown[1] != dataset.id):
    latest = jobs.latest_backtest(engine=engine, dataset_id=dataset.id)  # after a reload, or another user's job
    shown = ("job", latest.id) if latest is not None else None
ran_on, periods = None, None
if shown and shown[0] == "local":
    ran_on, periods = shown[1], shown[2]
elif shown and shown[0] == "job":
    view = jobs.job(engine=engine, job_id=shown[1])
    if view is not None and view.active:
        job_progress(view.id)
    elif view is not None and view.status == "done":
        ran_on, periods = dataset.id, jobs.backtest_result(engine=engine, job_id=view.id)
        st.caption(f"Job {view.id}, run by {view.created_by} at {view.created_at:%Y-%m-%d %H:%M} UTC.")
    elif view is not None:
        st.warning(f"Job {view.id} {view.status}: {view.message}")
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
