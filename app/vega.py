"""Drawing the dashboard's Altair charts in Streamlit without Altair's schema validation on every rerun.

st.altair_chart turns a chart into its Vega-Lite spec with `chart.to_dict()`, which checks the whole spec
against the Vega-Lite JSON schema (jsonschema) every time a page reruns, once per chart: with the check, a
finished run's Results page took 325 ms to convert its eight charts, without it 137 ms (`python
benchmarks/chart_draw.py` on the 2-core Zen 3 host, benchmarks/results/chart_draw_zen3.txt). The pages skip
the check and the tests make it instead: tests/test_charts.py and tests/test_method_views.py build the charts
with the check on, and tests/conftest.py checks the first chart of each kind that a line of a page draws in a
test process (the only check of the learning-rate finder's chart and pruning's final sparsity per layer, which
no unit test builds). What Streamlit sends is the same spec.
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
    `on_select` is given). Raises what st.altair_chart raises; an invalid spec is not caught here (the tests
    catch it: see the module's docstring). The chart object itself is left as it was for any other caller."""
    quick = _unvalidated(chart)
    return (st if target is None else target).altair_chart(quick, **kwargs)


def _unvalidated(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """A shallow copy of `chart` whose to_dict() (what Streamlit calls, with no arguments) skips validation.
    Set on the copy's instance, not on the class: other sessions' threads draw at the same time."""
    copy = chart.copy(deep=False)
    object.__setattr__(copy, "to_dict", functools.partial(type(copy).to_dict, copy, validate=False))
    return copy
