"""One AdaFilter demo-recipe run (run_all.sh's `adafilter` settings) trained in the precision and memory layout
given, then its model evaluated under both test-time gate rules in float32 and in bf16: does the training
precision, or the evaluation's, move AdaFilter's test accuracy?

    python benchmarks/adafilter_precision.py SEED [section.field=value ...]
    python benchmarks/adafilter_precision.py 0 train.amp=bf16 train.channels_last=false
    STUDIO_CPU_PRECISION=fp32 python benchmarks/adafilter_precision.py 0

Prints the run's precision and layout, its validation and test accuracy, and each rule's in each evaluation
precision (fractions). One thread, as run_all.sh's AdaFilter step.
"""

from __future__ import annotations

import sys

import torch

from common import WORK, config
from engine.config import apply_overrides, with_section
from engine.evaluate import predict
from engine.run_data import prepare_data
from engine.train import train


def main() -> None:
    torch.set_num_threads(1)
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    base = config("data.source=assets/sample_textures.zip", "data.image_size=64", "backbone.name=resnet18",
                  "backbone.pretrained=bundled", "train.epochs=20", "train.batch_size=32", "optim.lr=0.02",
                  "train.threads=1", "eval.ood=False", f"seed={seed}", "optim.linear_probe_epochs=2",
                  "adafilter.gate_optimizer=adam", "adafilter.gate_lr_mult=5", *sys.argv[2:])
    data = prepare_data(base, WORK / "data")
    cfg = apply_overrides(with_section(base, "adafilter", enabled=True),
                          ["adafilter.gate_bias=1", "adafilter.gated_lr_mult=1.4", "adafilter.eval_gates=expected"])
    result = train(cfg, data=data, work_dir=WORK / "data")
    ctx = result.context
    print(f"seed {seed}: trained in {ctx.amp_dtype or 'float32'}, channels_last {ctx.channels_last}; "
          f"val {result.summary['val_acc']:.4f}, test {result.summary['test_acc']:.4f}", flush=True)
    gates = next(m for m in ctx.model.modules() if hasattr(m, "eval_gates"))
    for amp in (None, torch.bfloat16):
        for rule in ("hard", "expected"):
            gates.eval_gates = rule
            with torch.no_grad():
                acc = {s: predict(ctx.model, getattr(data, s).images, getattr(data, s).labels, ctx.device,
                                  amp_dtype=amp).acc for s in ("val", "test")}
            print(f"  evaluated in {amp or 'float32'}, {rule} gates: val {acc['val']:.4f}, test {acc['test']:.4f}",
                  flush=True)


if __name__ == "__main__":
    main()
