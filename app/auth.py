"""Who is using the dashboard: access control when the server is reachable from a network.

Modes (environment variable STUDIO_ACCESS, set by run_app.py):
- `off`: no login; every visitor is the same anonymous user (the default on 127.0.0.1).
- `password`: a shared password (STUDIO_PASSWORD, or `studio_password` in Streamlit secrets)
  plus a name that identifies the user's runs; compared in constant time.
- `oidc`: Streamlit's own OpenID Connect login (`st.login`), configured in secrets.toml [auth];
  the user is their e-mail address.
With access control on, the engine keeps each user to their own (and shared) runs.
"""

from __future__ import annotations

import os
import re

import streamlit as st

from engine.security import check_password

USER_KEY = "auth_user"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def access_mode() -> str:
    mode = os.environ.get("STUDIO_ACCESS", "auto").strip().lower()
    if mode == "auto":
        return "off" if os.environ.get("STUDIO_HOST", "127.0.0.1") in LOCAL_HOSTS else "password"
    return mode if mode in ("off", "password", "oidc") else "password"  # unknown: the safe choice


def access_control_on() -> bool:
    return access_mode() != "off"


def expected_password() -> str:
    env = os.environ.get("STUDIO_PASSWORD", "")
    if env:
        return env
    try:
        return str(st.secrets.get("studio_password", ""))
    except Exception:  # no secrets file
        return ""


def current_user() -> str:
    """The logged-in user's name ("" when access control is off)."""
    if access_mode() == "oidc":
        try:
            if st.user.is_logged_in:
                return str(st.user.get("email") or st.user.get("name") or "")
        except Exception:
            return ""
        return ""
    return st.session_state.get(USER_KEY, "")


def require_login() -> str:
    """Return the current user, or draw the login screen and stop this script run."""
    mode = access_mode()
    if mode == "off":
        return ""
    user = current_user()
    if user:
        return user
    st.title("Fine-tuning studio")
    if mode == "oidc":
        st.write("This studio is shared: sign in to see and control your own runs.")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()
    if not expected_password():
        st.error("This studio is reachable from the network but no password is set, so nobody can sign in. "
                 "The administrator must set STUDIO_PASSWORD (or studio_password in secrets.toml) and restart.")
        st.stop()
    st.write("This studio is shared: sign in with your name and the class password. "
             "Your runs are kept apart from other people's.")
    with st.form("login"):
        name = st.text_input("Your name", max_chars=40, help="Letters, digits, spaces, dots, dashes.")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        clean = re.sub(r"[^\w .@-]", "", name).strip()
        if not clean:
            st.error("Please type your name.")
        elif not check_password(password, expected_password()):
            st.error("That password is not right. Ask your teacher or administrator for it.")
        else:
            st.session_state[USER_KEY] = clean
            st.rerun()
    st.stop()


def logout_button() -> None:
    if access_mode() == "off":
        return
    user = current_user()
    if not user:
        return
    st.caption(f"Signed in as **{user}**")
    if access_mode() == "oidc":
        st.button("Sign out", on_click=st.logout)
    elif st.button("Sign out"):
        for key in (USER_KEY, "cfg", "dataset", "focus_run"):  # the next user starts from their own draft
            st.session_state.pop(key, None)
        st.rerun()
