"""Widgets drawn from config dataclass fields, so a new method's settings need no UI code.

The widget is chosen from the field's type and its dataclass `metadata`:

    bool                     -> toggle (or checkbox)
    int / float              -> number input (or slider with metadata widget="slider")
    str with "choices"       -> select box (metadata "labels" may map choice -> shown text)
    str                      -> text input
    tuple[...] / list[...]   -> text input of comma-separated values

Metadata keys: `label`, `help`, `choices`, `min`, `max`, `step`, `scale`, `unit`, `format`,
`widget`. `min`, `max` and `step` are in the field's own (stored) units like its value; `scale`
only changes what is shown: shown = stored * scale (eps = 8/255 with scale 255 shows as 8).

Each widget is keyed `w:<section>.<field>` and seeded from the config value before it is drawn
(never passed as a default), so the config stays the one source of truth across pages.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Mapping

import streamlit as st

from engine.config import coerce_value, field_label, is_list_type, shown_setting
from engine.errors import StudioError
from app.layout import cells
from app.state import INPUT_ERRORS_KEY, WIDGET_PREFIX, md_text, save_draft


@dataclass(frozen=True)
class FieldInfo:
    """A setting as a widget shows it: its section and name, type, label and help, choices with their labels, bounds
    and step, the scale and unit it is shown in (eps x 255, "/255"), and the rest of its metadata."""

    section: str
    name: str
    type: Any
    label: str
    help: str | None = None
    choices: tuple | None = None
    labels: Mapping[str, str] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    scale: float = 1.0
    unit: str = ""
    format: str | None = None
    widget: str | None = None

    @property
    def key(self) -> str:
        """The widget's session-state key."""
        return widget_key(self.section, self.name)

    @property
    def shown_label(self) -> str:
        """The label with its unit in brackets: inside the label's own closing bracket ("Eps (attack
        budget, in /255)", not "Eps (attack budget) (/255)"), and left out where the label names it
        ("Corrupted images per epoch (0 = all)")."""
        if not self.unit or self.unit.lower() in self.label.lower():
            return self.label
        if self.label.endswith(")"):
            return f"{self.label[:-1]}, in {self.unit})"
        return f"{self.label} ({self.unit})"


def widget_key(section: str, name: str) -> str:
    """The session-state key of the widget for setting `section`.`name`."""
    return f"{WIDGET_PREFIX}{section}.{name}"


def field_info(section: str, cls: type, name: str, meta: Mapping[str, Any] | None = None) -> FieldInfo:
    """What to draw for `cls.name`: its dataclass metadata, overridden by `meta`."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    m = {**dict(f.metadata), **dict(meta or {})}
    typ = typing.get_type_hints(cls)[name]
    choices = m.get("choices")
    return FieldInfo(
        section=section, name=name, type=typ, label=field_label(name, m), help=m.get("help"),
        choices=tuple(choices) if choices is not None else None, labels=m.get("labels"),
        min=m.get("min"), max=m.get("max"), step=m.get("step"), scale=float(m.get("scale", 1.0) or 1.0),
        unit=m.get("unit", ""), format=m.get("format"), widget=m.get("widget"),
    )


def _decimals(x: float) -> int:
    """Decimals that show `x` with about three significant digits."""
    if not x or not math.isfinite(x):
        return 0
    return int(min(8, max(0, 2 - math.floor(math.log10(abs(x))))))


def _step_decimals(step: float) -> int:
    """Decimals a step needs: 0.05 -> 2, 0.001 -> 3, 1.0 -> 0 (float noise ignored)."""
    text = f"{step:.8f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def number_format(info: FieldInfo, shown: float) -> str:
    """Enough decimals for the step, and for the value when it is finer than the step (lr 0.0005)."""
    if info.format:
        return info.format
    decimals = _step_decimals(info.step * info.scale) if info.step else 2
    if abs(round(shown, decimals) - shown) > 1e-9 * max(1.0, abs(shown)):
        decimals = max(decimals, _decimals(shown))
    return f"%.{max(decimals, 1)}f"


def to_shown(info: FieldInfo, value: Any) -> Any:
    """`value` as the widget shows it: scaled (eps x 255), lists as "a, b", bools and strings as they are."""
    if info.type is bool or info.type is str:
        return value
    if is_list_type(info.type):
        return ", ".join(str(v) for v in value)
    if info.type is int and info.scale == 1:
        return int(value)
    return float(value) * info.scale


def from_shown(info: FieldInfo, shown: Any) -> Any:
    """A widget's value back in the setting's own units and type (the inverse of `to_shown` for numbers)."""
    if info.type is int:
        return int(round(shown / info.scale)) if info.scale != 1 else int(shown)
    if info.type is float:
        return float(shown) / info.scale
    return shown


def _seed(key: str, value: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def _list_widget(info: FieldInfo, key: str, value: Any, where: Any, disabled: bool) -> Any:
    """A list setting as comma-separated text. Text that cannot be read keeps `value` in the config,
    says why under the box and is kept as typed (INPUT_ERRORS_KEY, also in the draft), so that
    app.state.config_problems holds runs back until it is fixed."""
    errors = st.session_state.setdefault(INPUT_ERRORS_KEY, {})  # key -> (why, the text typed)
    _seed(key, errors[key][1] if key in errors else to_shown(info, value))  # back on the page: the text as typed
    text = where.text_input(info.shown_label, key=key, help=(info.help or "") + " Comma-separated values.",
                            disabled=disabled)
    try:
        got = coerce_value(info.label, info.type, text)
    except StudioError:
        item = (typing.get_args(info.type) or (str,))[0]
        kind = {float: "numbers", int: "whole numbers"}.get(item, "values")
        why = f"{info.label}: “{md_text(text)}” cannot be read: give {kind} separated by commas."
        if errors.get(key) != (why, text):
            errors[key] = (why, text)
            save_draft()  # the text as typed, for a refresh
        where.error(f"{why} No run starts until it is fixed.")
        return value
    if errors.pop(key, None) is not None:
        save_draft()
    return got


def field_widget(section: str, obj: Any, name: str, *, meta: Mapping[str, Any] | None = None,
                 disabled: bool = False, widget: str | None = None, container: Any = None) -> Any:
    """Draw the widget for field `name` of config dataclass `obj`; returns the value to store."""
    info = field_info(section, type(obj), name, meta)
    where = container if container is not None else st
    value = getattr(obj, name)
    kind = widget or info.widget
    key = info.key

    if info.type is bool:
        _seed(key, bool(value))
        draw = where.checkbox if kind == "checkbox" else where.toggle
        return bool(draw(info.shown_label, key=key, help=info.help, disabled=disabled))

    if info.choices is not None:
        choices = list(info.choices)
        if value not in choices:
            choices.append(value)  # an older config's value stays visible rather than vanishing
        if st.session_state.get(key, value) not in choices:
            del st.session_state[key]
        _seed(key, value)
        fmt = (lambda c: info.labels.get(c, str(c))) if info.labels else str
        if kind == "radio":
            return where.radio(info.shown_label, choices, key=key, help=info.help, disabled=disabled,
                               format_func=fmt, horizontal=True)
        return where.selectbox(info.shown_label, choices, key=key, help=info.help, disabled=disabled, format_func=fmt)

    if is_list_type(info.type):
        return _list_widget(info, key, value, where, disabled)

    if info.type in (int, float):
        shown = to_shown(info, value)
        is_int = info.type is int and info.scale == 1
        num = int if is_int else float
        lo = None if info.min is None else num(info.min * info.scale)
        hi = None if info.max is None else num(info.max * info.scale)
        if lo is not None:
            lo = min(lo, shown)  # never refuse the config's own value
        if hi is not None:
            hi = max(hi, shown)
        step = num(info.step * info.scale) if info.step else (1 if is_int else None)
        current = st.session_state.get(key, shown)
        if not isinstance(current, (int, float)) or (lo is not None and current < lo) or (hi is not None and current > hi):
            st.session_state.pop(key, None)
        # Seeded through session state (so a reset, e.g. a preset, reaches a field the browser already
        # shows) and also the widget's `value`, the same number on every run: without it the browser draws
        # the field at its default, the minimum, until the seeded value arrives (Epochs showed "1" after
        # every refresh), and a default that changed between runs reset untouched fields to it. The key is
        # the widget's identity, so the value never resets what the user set. Streamlit's warning about a
        # value set both ways is off in .streamlit/config.toml: here the two are always the same.
        _seed(key, num(shown))
        fmt = None if is_int else number_format(info, shown)
        if kind == "slider" and lo is not None and hi is not None:
            got = where.slider(info.shown_label, min_value=lo, max_value=hi, step=step, key=key, help=info.help,
                               disabled=disabled, format=fmt, value=num(shown))
        else:
            got = where.number_input(info.shown_label, min_value=lo, max_value=hi, step=step, key=key,
                                     help=info.help, disabled=disabled, format=fmt, value=num(shown))
        return from_shown(info, got if got is not None else shown)

    # str (or anything else): free text
    _seed(key, "" if value is None else str(value))
    return where.text_input(info.shown_label, key=key, help=info.help, disabled=disabled)


def dataclass_widgets(section: str, obj: Any, *, skip: tuple[str, ...] = ("enabled",), columns: int = 2,
                      disabled: bool = False, meta: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One widget per field of `obj` (except `skip`, and fields whose `shown_when` switch is off),
    laid out in `columns` cells (app.layout.cells: they wrap on a narrow page) in field order; returns
    field -> value (hidden fields keep their value)."""
    names = [f.name for f in dataclasses.fields(obj) if f.name not in skip]
    if not names:
        return {}
    cols = cells(min(columns, len(names)))
    values: dict[str, Any] = {}
    drawn = 0
    for name in names:
        if not shown_setting(obj, name, values):
            values[name] = getattr(obj, name)
            continue
        values[name] = field_widget(section, obj, name, meta=(meta or {}).get(name), disabled=disabled,
                                    container=cols[drawn % len(cols)])
        drawn += 1
    return values
