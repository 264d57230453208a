"""What switching robust evaluation on costs: the "Quick demo" preset on the bundled sample with
`eval.robust` off and on, whole CLI process each (as `benchmarks/first_model.py` runs it), the two
alternating seed by seed so that a machine that gets busier slows both. During training robust
accuracy is measured every epoch with a cheap attack (PGD with `eval.robust_steps_each_epoch`
steps on `eval.robust_subset` validation images); the full PGD-`eval.robust_steps` runs once at the end.
Target (issue 19): at most 1.5x the wall time of the same run without it.

    python benchmarks/robust_cost.py [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import statistics

from common import table
from first_model import NEW, one_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    rows, ratios = [], []
    for seed in args.seeds:
        off = one_run(NEW, seed)
        on = one_run([*NEW, "--set", "eval.robust=true"], seed)
        ratios.append(on["wall"] / off["wall"])
        rows.append([seed, f"{off['wall']:.1f}", f"{on['wall']:.1f}", f"{ratios[-1]:.2f}",
                     f"{100 * on['test']:.1f} / {100 * off['test']:.1f}", f"{100 * on['robust']:.1f}",
                     f"{off['load']:.1f} / {on['load']:.1f}"])
        print(f"seed {seed}: off {off['wall']:.1f} s, on {on['wall']:.1f} s, ratio {ratios[-1]:.2f}", flush=True)
    print(table(["seed", "wall s, robust off", "wall s, robust on", "on / off", "test % on / off",
                 "robust acc % (end, full attack)", "load off / on"], rows))
    print(f"mean ratio {statistics.mean(ratios):.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
