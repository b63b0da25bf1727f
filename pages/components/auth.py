"""Sign-in: Streamlit's OIDC (``st.login``) when ``[auth]`` is configured in secrets, else local accounts.

The page only learns who is signed in; every permission is checked again in
``rebal_core``. The signed-in user name is kept in ``st.session_state`` under
a non-widget key and the role is re-read from the store on every run.
"""

from __future__ import annotations

import time

import streamlit as st

from rebal_core.services import Actor, accounts

SIGNED_IN = "signed_in"  # username (non-widget key)


def oidc_configured() -> bool:
    try:
        section = st.secrets.get("auth", {})
    except Exception:  # noqa: BLE001 - no secrets file at all: local accounts
        return False
    return bool(section) and "cookie_secret" in section and "redirect_uri" in section


def _sign_in_form(engine, first_start: str | None) -> None:
    st.title("Rebal")
    st.subheader("Sign in")
    if first_start:
        st.info(first_start)
    if oidc_configured():
        st.button("Sign in with your identity provider", on_click=st.login, type="primary", key="auth-oidc")
        return
    with st.form("sign-in"):
        username = st.text_input("User name", key="auth-user")
        password = st.text_input("Password", type="password", key="auth-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            actor = accounts.authenticate(engine=engine, username=username, password=password)
        except accounts.AccountLocked as exc:
            st.error(str(exc).capitalize() + ".")
            return
        if actor is None:
            time.sleep(0.5)  # slows password guessing a little; argon2 does the rest
            st.error("Wrong user name or password (or the account is locked).")
        else:
            st.session_state[SIGNED_IN] = actor.username
            st.rerun()
    st.caption(
        "No account? An admin creates one on the Admin page (or `python -m rebal_core users add NAME --role planner`)."
    )


# The sidebar's pages, in the order of the process (Streamlit's own list named the home page "app").
PAGES = (
    ("app.py", "Home"),
    ("pages/1_Network.py", "Network"),
    ("pages/2_Hotspots.py", "Hotspots"),
    ("pages/3_Data.py", "Data"),
    ("pages/4_Scenario_lab.py", "Scenario lab"),
    ("pages/5_Plans.py", "Plans"),
    ("pages/6_Compare.py", "Compare"),
    ("pages/7_Audit_log.py", "Audit log"),
    ("pages/8_Admin.py", "Admin"),
    ("pages/9_Backtest.py", "Backtest"),
    ("pages/10_Monitor.py", "Monitor"),
)


def navigation() -> None:
    """Links to every page at the top of the sidebar (``client.showSidebarNavigation`` is off).

    A page run as its own entry point (``streamlit run pages/...``, AppTest) knows no other page:
    no links then, rather than an error."""
    from streamlit.errors import StreamlitPageNotFoundError

    with st.sidebar:
        try:
            for path, label in PAGES:
                st.page_link(path, label=label)
        except StreamlitPageNotFoundError:
            return
        st.divider()


def require_actor(engine, first_start: str | None = None) -> Actor:
    """The signed-in user; otherwise the sign-in form is shown and the page stops."""
    username = st.session_state.get(SIGNED_IN)
    if username is None and oidc_configured() and st.user.get("is_logged_in", False):
        actor = accounts.actor_for_oidc(
            engine=engine, email=str(st.user.get("email") or ""), name=str(st.user.get("name") or "")
        )
        if actor is not None:
            st.session_state[SIGNED_IN] = username = actor.username
    actor = accounts.actor_of(engine=engine, username=username) if username else None
    if actor is None:
        st.session_state.pop(SIGNED_IN, None)
        _sign_in_form(engine, first_start)
        st.stop()
    navigation()
    with st.sidebar:
        st.caption(f"Signed in as **{actor.username}** ({actor.role})")
        if st.button("Sign out", key="auth-sign-out"):
            st.session_state.pop(SIGNED_IN, None)
            if oidc_configured():
                st.logout()
            st.rerun()
    return actor
