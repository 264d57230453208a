"""The adversarial demo preset against the standard demo (the same recipe, no method), both with the
preset's robust evaluation (PGD-10 on the test split at eval.robust_eps), over several seeds, from the
CLI: does adversarial fine-tuning lift robust accuracy by the 15 points the claim line asks for
(engine.claims.adversarial_claim), and what does it cost in clean accuracy and time?

    python benchmarks/adversarial_demo.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics

from common import table
from first_model import one_run

ROBUST_EVAL = ["--set", "eval.robust=true", "--set", "eval.robust_steps=10"]  # the adversarial demo's evaluation
RECIPES = {"standard demo (+ the same robust evaluation)": ["--preset", "standard_demo", *ROBUST_EVAL],
           "adversarial demo": ["--preset", "adversarial_demo"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    res: dict[str, list[dict]] = {k: [] for k in RECIPES}
    for seed in args.seeds:
        for name, recipe in RECIPES.items():  # alternating, so a machine that gets busier slows both
            r = one_run(recipe, seed)
            res[name].append(r)
            print(f"{name}, seed {seed}: test {100 * r['test']:.1f}% robust {100 * r['robust']:.1f}% "
                  f"wall {r['wall']:.0f} s (load {r['load']:.2f})", flush=True)
    plain, adv = res[list(RECIPES)[0]], res[list(RECIPES)[1]]
    rows = [[name, f"{100 * statistics.mean(r['test'] for r in rs):.1f}",
             f"{100 * statistics.mean(r['robust'] for r in rs):.1f}",
             " / ".join(f"{100 * r['robust']:.1f}" for r in rs), f"{statistics.mean(r['wall'] for r in rs):.0f}"]
            for name, rs in res.items()]
    print()
    print(table(["run", "test % mean", "robust test % mean", "robust per seed", "wall s mean"], rows))
    gains = [a["robust"] - p["robust"] for a, p in zip(adv, plain)]
    shown = sum(g >= 0.15 for g in gains)
    print(f"\nrobust gain over the standard demo, per seed (points): {' / '.join(f'{100 * g:+.1f}' for g in gains)}; "
          f"claim (>= +15 points) shown on {shown} of {len(gains)} seeds; clean test cost "
          f"{100 * statistics.mean(a['test'] - p['test'] for a, p in zip(adv, plain)):+.1f} points")


if __name__ == "__main__":
    main()
