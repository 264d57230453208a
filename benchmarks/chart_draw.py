"""What the charts of a finished run's Results page cost a rerun to convert for Streamlit: st.altair_chart's
conversion of a chart to its Vega-Lite spec (Streamlit's `_convert_altair_to_vega_lite_spec`: Altair's
`to_dict()`, with its schema check, the data as Arrow), against the same conversion of the dashboard's copy
(app/vega.py: the same spec without the check). Ratios measured in one run.

    python benchmarks/chart_draw.py [--rounds 7] [--epochs 10] [--classes 8]

The charts: accuracy, loss and step loss, learning rate, confusion matrix, accuracy per class, accuracy per
corruption and the WiSE-FT curve, for a made-up run of `--epochs` epochs (20 steps each) on `--classes`
classes. Prints each chart's median milliseconds both ways, the ratio, and the page's total.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import median_s  # noqa: E402


def page_charts(epochs: int, classes: int) -> dict:
    """The Results page's charts (name -> Altair chart) for a made-up run of `epochs` epochs on `classes` classes."""
    import numpy as np
    import pandas as pd

    from app import charts
    from app.method_views.wise_ft import curve_chart, curve_frame
    from engine.corruptions import CORRUPTIONS

    rng = np.random.default_rng(0)
    history = pd.DataFrame([{"epoch": e, "train_loss": 2 / e, "val_loss": 2.2 / e, "train_acc": 1 - 0.5 / e,
                             "val_acc": 1 - 0.6 / e, "ood_acc": 0.8 - 0.5 / e, "robust_acc": 0.5 - 0.3 / e}
                            for e in range(1, epochs + 1)])
    steps = pd.DataFrame({"step": np.arange(1, 20 * epochs + 1), "loss": rng.random(20 * epochs),
                          "lr": np.linspace(0.01, 0, 20 * epochs)})
    names = [f"class {i}" for i in range(classes)]
    matrix = rng.integers(0, 20, (classes, classes)).tolist()
    curve = [{"alpha": a / 20, "val_acc": 0.7 + a / 100, "ood_acc": 0.6 + a / 90} for a in range(21)]
    return {
        "accuracy": charts.accuracy_chart(history),
        "loss": charts.loss_chart(history),
        "step loss": charts.step_loss_chart(steps),
        "learning rate": charts.lr_chart(steps),
        "confusion": charts.confusion_chart(charts.confusion_frame(matrix, names)),
        "per class": charts.per_class_chart(charts.per_class_frame(dict(zip(names, rng.random(classes))))),
        "per corruption": charts.ood_chart(charts.ood_frame({c: float(rng.random()) for c in CORRUPTIONS}), 0.9),
        "WiSE-FT curve": curve_chart(curve_frame(curve), 0.5),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--classes", type=int, default=8)
    args = ap.parse_args(argv)
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec as streamlit_spec

    from app.vega import _unvalidated

    print(f"{'chart':16} {'checked ms':>10} {'dashboard ms':>12} {'ratio':>6}")
    totals = [0.0, 0.0]
    for name, chart in page_charts(args.epochs, args.classes).items():
        checked = 1000 * median_s(lambda: streamlit_spec(chart), args.rounds)
        quick = 1000 * median_s(lambda: streamlit_spec(_unvalidated(chart)), args.rounds)
        totals[0] += checked
        totals[1] += quick
        print(f"{name:16} {checked:10.1f} {quick:12.1f} {checked / quick:6.2f}")
    print(f"{'page':16} {totals[0]:10.1f} {totals[1]:12.1f} {totals[0] / totals[1]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
