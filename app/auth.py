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

import json
import os
import time

import streamlit as st

from engine.paths import default_data_dir
from engine.security import (LOGIN_TTL_S, SignInThrottle, check_password, login_key, login_token, login_user,
                             user_name)

USER_KEY = "auth_user"
LOGIN_COOKIE = "studio_login"  # a signed sign-in (engine.security.login_token), so that a refresh keeps it
TOKEN_KEY = "auth_token"  # a new sign-in for the browser to store (written on the next run, once)
SIGNED_OUT_KEY = "auth_signed_out"  # the browser's cookie (read when the tab opened) no longer counts
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def access_mode() -> str:
    """"off", "password" or "oidc" from STUDIO_ACCESS; "auto" (the default) is off on this computer alone
    (STUDIO_HOST local) and password otherwise; an unknown value reads as password, the safe choice."""
    mode = os.environ.get("STUDIO_ACCESS", "auto").strip().lower()
    if mode == "auto":
        return "off" if os.environ.get("STUDIO_HOST", "127.0.0.1") in LOCAL_HOSTS else "password"
    return mode if mode in ("off", "password", "oidc") else "password"  # unknown: the safe choice


def access_control_on() -> bool:
    """True unless the access mode is "off" (each user then sees their own runs)."""
    return access_mode() != "off"


def expected_password() -> str:
    """The sign-in password: STUDIO_PASSWORD, else Streamlit's secret `studio_password`, else "" (none set)."""
    env = os.environ.get("STUDIO_PASSWORD", "")
    if env:
        return env
    try:
        return str(st.secrets.get("studio_password", ""))
    except Exception:  # no secrets file
        return ""


def signing_key() -> bytes | None:
    """The key of this server's kept sign-ins (engine.security.login_key, its secret in the engine's
    folder), or None without a password or when the secret cannot be kept (sign-ins then last a tab)."""
    password = expected_password()
    if not password:
        return None
    try:
        return login_key(default_data_dir() / "login.key", password)
    except OSError:
        return None


def browser_cookie(name: str) -> str | None:
    """A cookie the browser sent when this tab opened (None without one)."""
    try:
        return st.context.cookies.get(name)
    except Exception:  # no browser (a script run)
        return None


def kept_sign_in() -> str:
    """The user a valid sign-in cookie names ("" when there is none, it is forged, expired or from
    before a password change, or the user signed out in this tab)."""
    if st.session_state.get(SIGNED_OUT_KEY):
        return ""
    key = signing_key()
    return (login_user(browser_cookie(LOGIN_COOKIE), key, time.time()) or "") if key else ""


def set_cookie_script(value: str, max_age: int) -> None:
    """Store (max_age > 0) or delete (0) the sign-in cookie in the browser: a script in a same-origin
    iframe 1 px high (`st.iframe` of our own fixed HTML, never of user input), the only way a
    Streamlit page can write a cookie. SameSite=Strict; Secure over https."""
    cookie = json.dumps(f"{LOGIN_COOKIE}={value}; path=/; max-age={max_age}; SameSite=Strict")
    st.iframe(f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');"
              "</script>", height=1)


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


@st.cache_resource
def _throttle() -> SignInThrottle:
    """The server's one count of wrong passwords per client (engine.security.SignInThrottle)."""
    return SignInThrottle()


def _client() -> str:
    """The browser's address as the server sees it ("" when Streamlit cannot tell)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no address: one count for every such client
        return ""
    return address if isinstance(address, str) else ""  # None on localhost; a stand-in object under AppTest


def sign_in_name(typed: str, known_owner=lambda name: None) -> tuple[str, str]:
    """(the user name to sign in as, "" or a refusal in words) for the name `typed` on the sign-in form:
    engine.security.user_name's rules; a name the store knows in another letter case (`known_owner`,
    engine.store.RunStore.known_owner) signs in as that account, so that "Alice" finds alice's runs."""
    name, refusal = user_name(typed)
    return ("", refusal) if refusal else (known_owner(name) or name, "")


def require_login(known_owner=lambda name: None) -> str:
    """Return the current user, or draw the login screen and stop this script run. `known_owner(name)`: the
    spelling of an existing account that is `name` in another letter case (sign_in_name)."""
    mode = access_mode()
    if mode == "off":
        return ""
    user = current_user()
    if user:
        token = st.session_state.pop(TOKEN_KEY, None)
        if token:  # once, right after signing in; in the sidebar, where its empty frame moves nothing
            with st.sidebar:
                set_cookie_script(token, LOGIN_TTL_S)
        return user
    if mode == "password":
        user = kept_sign_in()  # a refresh: the browser kept this tab's sign-in
        if user:
            st.session_state[USER_KEY] = user
            return user
    st.title("Fine-tuning studio")
    if st.session_state.get(SIGNED_OUT_KEY):
        set_cookie_script("", 0)
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
        name = st.text_input("Your name", max_chars=40, help="Letters, digits, spaces, dots, @, dashes, underscores, apostrophes. "
                             "Capitals do not matter: Alice and alice are one person.")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        clean, refusal = sign_in_name(name, known_owner)
        wait, whose = _throttle().wait_left(_client(), clean)
        if refusal:
            st.error(refusal)
        elif wait > 0:  # even the right password waits: a guesser learns nothing by trying it
            st.error(f"Too many wrong passwords for the name {clean} on this computer: try again in {wait:.0f} s."
                     if whose == "name" else
                     f"Too many wrong passwords from this computer's network address: try again in {wait:.0f} s.")
        elif not check_password(password, expected_password()):
            _throttle().failed(_client(), clean)
            st.error("That password is not right. Ask your teacher or administrator for it.")
        else:
            _throttle().succeeded(_client(), clean)
            st.session_state[USER_KEY] = clean
            st.session_state.pop(SIGNED_OUT_KEY, None)
            key = signing_key()
            if key:
                st.session_state[TOKEN_KEY] = login_token(clean, key, time.time())
            st.rerun()
    st.stop()


def logout_button(forget=lambda: None) -> None:
    """The signed-in name and a Sign out button (access control on); `forget()` clears what the tab
    holds of the user (app.state.forget_session) before the next user signs in."""
    if access_mode() == "off":
        return
    user = current_user()
    if not user:
        return
    st.caption(f"Signed in as **{user}**")
    if access_mode() == "oidc":
        st.button("Sign out", on_click=st.logout)
    elif st.button("Sign out"):
        forget()  # the next user starts from their own draft, not this one's photos or settings
        for key in (USER_KEY, TOKEN_KEY):
            st.session_state.pop(key, None)
        st.session_state[SIGNED_OUT_KEY] = True  # and the browser forgets the kept sign-in
        st.rerun()
