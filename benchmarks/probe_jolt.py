"""The first whole-network epoch after the head-only (linear-probe) epochs: how far validation accuracy
falls there, and what changes it.

In the WiSE-FT demo, epochs 1-2 train the head alone and epoch 3 is the first in which the whole
ResNet-18 learns, at the demo's full rate (SGD 0.02, momentum 0.9: an effective learning rate of 0.2,
Li et al. 2020). This prints each run's validation accuracy and loss per epoch for the recipe as it
is and for variants:

- `trunk0.1`: the layers below the head at a tenth of the rate (`optim.trunk_lr_mult=0.1`);
- `bn_eval`: batch norm kept in evaluation mode (ImageNet statistics) after the probe as during it,
  to tell the learning rate from the switch of batch-norm statistics (a diagnostic: the studio has
  no such setting).

    python benchmarks/probe_jolt.py [--preset wise_ft_demo] [--seeds 0 1] [--epochs 4]
        [--variants base trunk0.1 bn_eval] [--threads 2]

The WiSE-FT curve is cut to its two ends (the jolt is in training, not in the curve).
"""

from __future__ import annotations

import argparse

from common import config

import torch

import engine.train as engine_train
from engine import presets
from engine.config import apply_overrides
from engine.errors import StudioError
from engine.optim import set_frozen_bn_eval

VARIANTS = {"base": [], "trunk0.1": ["optim.trunk_lr_mult=0.1"], "bn_eval": []}


def one_run(preset: str, seed: int, epochs: int, variant: str) -> str:
    """One run of `preset` for `epochs` epochs: a line with its validation accuracy (%) and loss per epoch."""
    cfg = getattr(presets, preset)(config(f"seed={seed}"))
    cfg = apply_overrides(cfg, [f"train.epochs={epochs}", "wise_ft.alphas=[0,1]"]
                          + VARIANTS[variant])
    if variant == "bn_eval":  # every trunk block's batch norm as in the head-only epochs
        engine_train.set_frozen_bn_eval = lambda model, frozen, probe_only: set_frozen_bn_eval(model, frozen, True)
    try:
        history = engine_train.train(cfg).summary["history"]
    except StudioError as exc:
        return f"{variant:9s} seed {seed}: {exc}"
    finally:
        engine_train.set_frozen_bn_eval = set_frozen_bn_eval
    acc = " ".join(f"{100 * h['val_acc']:5.1f}" for h in history)
    loss = " ".join(f"{h['val_loss']:5.2f}" for h in history)
    return f"{variant:9s} seed {seed}: validation % {acc} | validation loss {loss}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="wise_ft_demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.preset}, {args.epochs} epochs, {args.threads} threads; epochs 1-2 train the head alone")
    for seed in args.seeds:
        for variant in args.variants:
            print(one_run(args.preset, seed, args.epochs, variant), flush=True)


if __name__ == "__main__":
    main()
