"""Rows that fit any window. Streamlit's st.columns(n) keeps n columns however narrow the page: on a
1024 px projector or a 1000 px laptop window with the sidebar open, labels, values and buttons in them
were cut ("Start trai...", "Para... 11...", "SGD with mor"). These rows wrap instead: their items
keep a readable width and move to the next line when the page is narrow."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator


def tiles() -> DeltaGenerator:
    """A row for metric tiles: give each st.metric(..., width="content"); the tiles keep their words
    whole and wrap onto more lines on a narrow page."""
    return st.container(horizontal=True, wrap=True, gap="medium")


def tile_width(label: str, longest: str) -> int:
    """A metric tile's width in pixels (int) that holds `longest`, the widest value it can show, in Streamlit's
    2.25 rem value font (about 16 px a character, measured in Chromium at 16 px a rem) and its `label` (about 6 px
    a character) with a help icon: live tiles keep their place while the numbers change ("Step 9 / 120" -> "10 /
    120" moved every tile right of it). Raises nothing."""
    return max(16 * len(longest), 6 * len(label) + 28) + 8


CELL_MIN_PX = 180  # a keyed row's cells: a number box with its +/- buttons, or "SGD with momentum", whole


def cells(n: int, key: str | None = None) -> list[DeltaGenerator]:
    """`n` containers side by side sharing the row's width equally, like st.columns(n), that wrap onto
    more lines when the page is too narrow for n of Streamlit's minimum item width (about 120 px). With `key`
    (unique on the page) each cell is at least CELL_MIN_PX wide (a style on the row's st-key class): four
    settings a row on a 1024 px window with the sidebar open were cut at Streamlit's minimum ("0.0025(", "SGD
    with mor") and now wrap two a row, while a 1280 px window keeps four. A cell left empty is not drawn
    (Streamlit drops empty containers): the others share its width."""
    if key:  # a style alone takes no room on the page; drawn first, the row never shows without it
        st.html(f"<style>.st-key-cells_{key} > div {{min-width: {CELL_MIN_PX}px;}}</style>")
    row = st.container(horizontal=True, wrap=True, key=f"cells_{key}" if key else None)
    return [row.container(width="stretch") for _ in range(n)]


def button_row() -> DeltaGenerator:
    """A row whose buttons are as wide as their words (st.columns cut them on a narrow page); put a note
    beside them with row.container(width="stretch")."""
    return st.container(horizontal=True, vertical_alignment="center")
