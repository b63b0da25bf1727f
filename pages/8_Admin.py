"""Admin: your password; users and roles; the approval policy (versioned)."""

import json

import pandas as pd
import streamlit as st

from pages.components import state, widgets
from rebal_core.services import ROLES, Policy, Thresholds, accounts, workflow

st.set_page_config(page_title="Admin - Rebal", layout="wide")
st.title("Admin")
actor = state.ensure_started()
engine = state.engine()
REFUSED = workflow.REFUSALS
widgets.flash()

with st.expander("Change my password"):
    current = st.text_input("Current password", type="password", key="adm-cur")
    new = st.text_input("New password (10 characters or more)", type="password", key="adm-new")
    if st.button("Change password", key="adm-pw"):
        widgets.attempt(
            lambda: accounts.set_password(
                engine=engine, actor=actor, username=actor.username, password=new, current=current
            ),
            "Password changed.",
            REFUSED,
        )

# ----------------------------------------------------------------------------- policy
st.subheader("Approval policy")
policy = workflow.current_policy(engine=engine)
st.caption(
    f"Version {policy.version} is in force. A line needs an approver when its value (qty x unit cost) or its cost (transfer incl. truck share) "
    "is above the threshold; a lane's threshold wins over its category's, which wins over the default. Lines under every threshold are "
    "approved by the policy when the plan is submitted."
)
c1, c2 = st.columns(2)
value = c1.number_input(
    "Default line value threshold ($)",
    min_value=0.0,
    value=float(policy.default.line_value or 0),
    step=500.0,
    key="adm-value",
    disabled=not actor.can("set_policy"),
)
cost = c2.number_input(
    "Default line cost threshold ($)",
    min_value=0.0,
    value=float(policy.default.line_cost or 0),
    step=50.0,
    key="adm-cost",
    disabled=not actor.can("set_policy"),
)
rows = [
    {"applies to": "lane", "key": k, "line_value": t.line_value, "line_cost": t.line_cost}
    for k, t in policy.lanes.items()
]
rows += [
    {"applies to": "category", "key": k, "line_value": t.line_value, "line_cost": t.line_cost}
    for k, t in policy.categories.items()
]
overrides = pd.DataFrame(rows, columns=["applies to", "key", "line_value", "line_cost"])
edited = st.data_editor(
    overrides,
    num_rows="dynamic",
    width="stretch",
    key=f"adm-overrides-{policy.version}",
    disabled=not actor.can("set_policy"),
    column_config={
        "applies to": st.column_config.SelectboxColumn(options=["lane", "category"], required=True),
        "key": st.column_config.TextColumn(help="lane as FROM>TO site ids, or a category name", required=True),
        "line_value": st.column_config.NumberColumn(min_value=0.0, format="$%.0f"),
        "line_cost": st.column_config.NumberColumn(min_value=0.0, format="$%.0f"),
    },
)
four_eyes = st.toggle(
    "Four eyes: a plan's approver is not its author, a line's approver not who set its quantity",
    value=policy.four_eyes,
    key="adm-four-eyes",
    disabled=not actor.can("set_policy"),
    help="Switch off only for a one-person business; the change is audited.",
)
note = st.text_input("Why this change", key="adm-note")
if st.button(
    f"Save as policy v{policy.version + 1}", disabled=not actor.can("set_policy"), type="primary", key="adm-save-policy"
):

    def none(x):
        return None if x is None or x != x else float(x)

    lanes = {
        str(r["key"]).strip(): Thresholds(none(r["line_value"]), none(r["line_cost"]))
        for _, r in edited.iterrows()
        if r["applies to"] == "lane" and str(r["key"]).strip()
    }
    cats = {
        str(r["key"]).strip(): Thresholds(none(r["line_value"]), none(r["line_cost"]))
        for _, r in edited.iterrows()
        if r["applies to"] == "category" and str(r["key"]).strip()
    }
    new_policy = Policy(
        default=Thresholds(float(value), float(cost)), lanes=lanes, categories=cats, four_eyes=bool(four_eyes)
    )
    widgets.attempt(
        lambda: workflow.set_policy(engine=engine, actor=actor, policy=new_policy, note=note),
        lambda p: f"Policy v{p.version} is in force.",
        REFUSED,
    )
with st.expander("Policy history"):
    history = pd.DataFrame(
        [
            {
                "version": p.version,
                "created (UTC)": p.created_at,
                "by": p.created_by,
                "note": p.note,
                "thresholds": json.loads(p.thresholds),
            }
            for p in workflow.policy_history(engine=engine)
        ]
    )
    st.dataframe(history, hide_index=True, width="stretch", key="adm-history")

# ----------------------------------------------------------------------------- users
st.subheader("Users")
if not actor.can("manage_users"):
    st.caption(f"Managing users needs the admin role; you are a {actor.role}.")
    st.stop()
users = accounts.list_users(engine=engine)
st.dataframe(pd.DataFrame([u.model_dump() for u in users]), hide_index=True, width="stretch", key="adm-users")
left, right = st.columns(2)
with left.form("adm-add"):
    st.markdown("**Add a user**")
    name = st.text_input("User name")
    role = st.selectbox("Role", ROLES, index=1)
    email = st.text_input("E-mail (matches identity-provider sign-ins)")
    password = st.text_input("Initial password (10+ characters; empty for identity-provider only)", type="password")
    if st.form_submit_button("Add user"):
        widgets.attempt(
            lambda: accounts.create_user(
                engine=engine, actor=actor, username=name, role=role, password=password or None, email=email or None
            ),
            lambda u: f"Added {u.username} ({u.role}).",
            REFUSED,
        )
with right:
    st.markdown("**Change a user**")
    who = st.selectbox("User", [u.username for u in users], key="adm-who")
    target = next(u for u in users if u.username == who)
    new_role = st.selectbox(
        "Role", ROLES, index=ROLES.index(target.role) if target.role in ROLES else 0, key="adm-role"
    )
    b1, b2 = st.columns(2)
    if b1.button("Set role", key="adm-set-role"):
        widgets.attempt(
            lambda: accounts.update_user(engine=engine, actor=actor, username=who, role=new_role),
            f"{who} is now {new_role}.",
            REFUSED,
        )
    if b2.button("Unlock" if not target.active else "Lock", key="adm-lock"):
        widgets.attempt(
            lambda: accounts.update_user(engine=engine, actor=actor, username=who, active=not target.active),
            f"{who} {'unlocked' if not target.active else 'locked'}.",
            REFUSED,
        )
    if target.failed_sign_ins or target.locked_until is not None:
        st.caption(
            f"{target.failed_sign_ins} failed sign-in(s) in a row"
            + (f"; locked until {target.locked_until:%Y-%m-%d %H:%M:%S} UTC" if target.locked_until else "")
        )
        if st.button("Lift the sign-in lock", key="adm-unlock-sign-in"):
            widgets.attempt(
                lambda: accounts.unlock_user(engine=engine, actor=actor, username=who),
                f"{who} may sign in again.",
                REFUSED,
            )
    reset = st.text_input("New password for this user", type="password", key="adm-reset")
    if st.button("Reset password", disabled=not reset, key="adm-reset-btn"):
        widgets.attempt(
            lambda: accounts.set_password(engine=engine, actor=actor, username=who, password=reset),
            f"Password of {who} reset.",
            REFUSED,
        )
