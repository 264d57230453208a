"""The dashboard's entry point: `streamlit run app/main.py` (or `python run_app.py`).

A frame around the pages: page config, the process-wide engine, this tab's defaults, the
navigation and the sidebar with the engine's status and queue. Each page is a file in
app/app_pages/ that reads widgets and calls the engine. (Not `app/pages/`: Streamlit treats a
folder of that name next to the entry script as a legacy multipage app, and a first visit straight
to /model would then run that page without this frame.)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the project
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

# the tab's icon from our own file: a material-icon favicon is fetched from fonts.gstatic.com (not offline)
st.set_page_config(page_title="Fine-tuning studio", page_icon=str(ROOT / "assets" / "icon.png"), layout="wide",
                   initial_sidebar_state="expanded")
# the first visit after a server start imports PyTorch (seconds): a line says so instead of a blank page
starting = st.empty()
if "torch" not in sys.modules:
    starting.caption("Starting the studio: loading PyTorch, a few seconds once after each server start…")

from app import components, state  # noqa: E402

starting.empty()

try:
    engine = state.get_engine()
except Exception as exc:  # e.g. the data folder is not writable
    st.title("Fine-tuning studio")
    state.show_error(exc, f"starting the training engine in {state.data_dir()}")
    st.info("Set the environment variable STUDIO_DATA_DIR to a folder you can write to, then restart the app.")
    st.stop()

from app import auth  # noqa: E402

auth.require_login(engine.store.known_owner)  # on a shared server: the login screen until the user signs in
state.init_session()  # after the login: the user's saved draft is theirs alone
restored = st.session_state.pop(state.NOTE_KEY, None)  # what of the saved next run could not come back
if restored:
    st.info(restored, icon=":material/restore:")

pages = [  # the default page lives at / and reserves its own url_path, so /data is a hidden page sending there
    st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:", url_path="start", default=True),
    st.Page("app_pages/model.py", title="Model and methods", icon=":material/tune:", url_path="model"),
    st.Page("app_pages/train.py", title="Train (live)", icon=":material/monitoring:", url_path="train"),
    st.Page("app_pages/results.py", title="Results", icon=":material/leaderboard:", url_path="results"),
    st.Page("app_pages/explain.py", title="Explain and export", icon=":material/visibility:", url_path="explain"),
    st.Page("app_pages/try_it.py", title="Try it", icon=":material/photo_camera:", url_path="try"),
]


def to_data_page() -> None:
    """/data, the Data page's name as an address (typed or bookmarked): the Data page, at the app's start, /.
    The restored draft's note, shown once by this run, is put back first: the switch cuts the run short and
    the next one clears what this one drew."""
    if restored:
        st.session_state[state.NOTE_KEY] = restored
    st.switch_page(pages[0])


page = st.navigation(pages + [st.Page(to_data_page, title="Data", url_path="data", visibility="hidden")])

try:
    page.run()
except Exception as exc:  # a bug in a page: say so politely, keep the rest of the app usable
    state.show_error(exc, "drawing this page")

with st.sidebar:  # drawn after the page, so it shows what the page just changed
    components.sidebar(engine, live_page=page.url_path == "train")
    auth.logout_button(forget=state.forget_session)
