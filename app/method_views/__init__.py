"""Method-specific result views: a hook for methods whose results need more than the standard charts.

The Results page calls, for each method enabled in a run's config that has an entry here,

    VIEWS[method_name](engine, run_record, summary)

inside its own section (under a subheader with the method's title), after the standard results.
`summary` is the run's summary.json as a dict (empty when the run has none), `run_record` the
engine's RunRecord (its `run_dir` holds the run's files). A view draws with `st.*` and may call
the engine (e.g. a WiSE-FT alpha slider that evaluates interpolated weights). Failures inside a
view are shown as a message on the page; they never break the rest of the Results page.

Register a view from a module in this package, and import that module below:

    from app.method_views import register_view

    @register_view("wise_ft")
    def wise_ft_view(engine, run_record, summary):
        ...
"""

from __future__ import annotations

from typing import Any, Callable

MethodView = Callable[[Any, Any, dict], None]

VIEWS: dict[str, MethodView] = {}


def points_delta(a: float, b: float, against: str) -> dict[str, Any]:
    """st.metric's delta arguments for accuracy `a` against `b` (fractions), in the points shown:
    "+1.2 pts vs clean"; a difference that rounds to 0.0 is grey and arrowless (a green "up" read as a
    gain where nothing changed)."""
    from engine.claims import points_diff, shown_points

    flat = shown_points(a, b) == 0
    return {"delta": f"{'±0.0' if flat else points_diff(a, b)} pts vs {against}",
            "delta_color": "off" if flat else "normal", "delta_arrow": "off" if flat else "auto"}


def register_view(method: str) -> Callable[[MethodView], MethodView]:
    """Decorator: register `fn(engine, rec, summary)` as `method`'s view on Results. Raises ValueError when the
    method has one already."""
    def deco(fn: MethodView) -> MethodView:
        if method in VIEWS:
            raise ValueError(f"a result view for {method!r} is already registered")
        VIEWS[method] = fn
        return fn

    return deco


# Importing the view modules registers them; a view not written yet is simply absent.
for _mod in ("adversarial", "wise_ft", "adafilter", "pruning"):
    try:
        __import__(f"app.method_views.{_mod}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"app.method_views.{_mod}":
            raise
