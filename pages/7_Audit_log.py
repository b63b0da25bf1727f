"""Audit log: who did what, when, with before and after; filter and export."""

import streamlit as st

from pages.components import state, widgets
from rebal_core.services import audit_trail

st.set_page_config(page_title="Audit log - Rebal", layout="wide")
st.title("Audit log")
state.ensure_started()
engine = state.engine()
st.caption("Append-only: the store refuses to change or delete an event. Times are UTC.")

c1, c2, c3, c4 = st.columns([1, 2, 1, 2])
user = c1.selectbox(
    "User",
    [None, *audit_trail.users(engine=engine)],
    format_func=lambda u: "Everyone" if u is None else u,
    key="audit-user",
)
actions = c2.multiselect("Actions", audit_trail.actions(engine=engine), key="audit-actions", placeholder="All actions")
days = c3.selectbox(
    "Period",
    [1, 7, 30, 365, None],
    index=2,
    format_func=lambda d: "All time" if d is None else f"Last {d} day(s)",
    key="audit-days",
)
text = c4.text_input("Search the summary", key="audit-q")
events = audit_trail.events(engine=engine, username=user, actions=actions, days=days, text=text)
st.markdown(f"**{len(events):,} event(s)**")
st.dataframe(
    events.drop(columns=["before", "after"]),
    hide_index=True,
    width="stretch",
    height=420,
    key="audit-table",
    column_config={"summary": st.column_config.TextColumn(width="large")},
)
widgets.download_csv(events, "audit-log.csv", "Download these events (CSV, with before and after)", key="audit-csv")
if len(events):
    one = st.selectbox(
        "Event details",
        events["id"].tolist(),
        format_func=lambda i: f"#{i} {events.set_index('id').loc[i, 'summary'][:90]}",
        key="audit-one",
    )
    row = events.set_index("id").loc[one]
    left, right = st.columns(2)
    for column, title, side in (("before", "Before", left), ("after", "After", right)):
        side.markdown(f"**{title}**")
        value = audit_trail.detail(row[column])
        if value is None:
            side.caption("Nothing recorded.")
        else:
            side.json(value, expanded=True)
