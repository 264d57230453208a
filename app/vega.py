"""Drawing the dashboard's Altair charts in Streamlit without Altair's schema validation on every rerun.

st.altair_chart turns a chart into its Vega-Lite spec with `chart.to_dict()`, which checks the whole spec
against the Vega-Lite JSON schema (jsonschema) every time a page reruns: about two thirds of the conversion
(the accuracy chart of a 10-epoch run, 160 ms with the check, 51 ms without, on the 2-core Zen 3 host; every
slider move and refresh of Results pays it once per chart). The charts come from builders whose specs
tests/test_charts.py validates (`test_every_chart_the_pages_draw_is_a_valid_vega_lite_spec`), so the pages
skip the check; what Streamlit sends is the same spec.
"""

from __future__ import annotations

import functools
from typing import Any

import altair as alt
import streamlit as st


def altair_chart(chart: alt.TopLevelMixin, target: Any = None, **kwargs: Any) -> Any:
    """Draw `chart` (an Altair top-level chart: Chart, LayerChart, HConcatChart, ...) with
    `target.altair_chart(chart, **kwargs)` (`target`: st by default, or a column or container), the spec
    built with `to_dict(validate=False)`. Returns what st.altair_chart returns (the selection state when
    `on_select` is given). Raises what st.altair_chart raises; an invalid spec is not caught here (the
    builders' tests catch it). The chart object itself is left as it was for any other caller."""
    quick = _unvalidated(chart)
    return (st if target is None else target).altair_chart(quick, **kwargs)


def _unvalidated(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """A shallow copy of `chart` whose to_dict() (what Streamlit calls, with no arguments) skips validation.
    Set on the copy's instance, not on the class: other sessions' threads draw at the same time."""
    copy = chart.copy(deep=False)
    object.__setattr__(copy, "to_dict", functools.partial(type(copy).to_dict, copy, validate=False))
    return copy
