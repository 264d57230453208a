"""What a dashboard rerun or a command pays to read a run's config, load a finished run's model and reload a
decoded dataset, against the work each did before it was done once (ratios measured in one run).

    python benchmarks/load_costs.py [--rounds 7] [--backbone resnet18] [--threads 1]

- config read: `RunConfig.from_dict` with the type hints resolved once per class, against resolving them again
  for every field (the earlier code, patched in);
- model load: `build_model(..., initialise=False)` (what `engine.runs.model_from_state` builds before loading a
  checkpoint), against a build that draws the random weights the checkpoint then overwrites;
- channel-pruned model load: what `engine.runs.load_structured` builds before loading a structured-pruning
  checkpoint (the backbone, its layers resized to a half-channel `shrink` of it), the resized layers left unset
  (`torch.nn.utils.skip_init`), against resized layers that draw random weights (the earlier code, patched in);
- dataset reload: `load_dataset` of the bundled sample at 64 px, decoded once, with the copy groups and greyscale
  measure kept with the decoding, against the same reload with them measured again (the kept measures cleared).
Prints the median seconds of each over `--rounds` and the ratio old/new.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import typing
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import median_s  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from engine import config, data
    from engine.backbones import build_model
    from engine.paths import resolve_path

    rows = []
    d = config.RunConfig().to_dict()
    new = median_s(lambda: config.RunConfig.from_dict(d), args.rounds)
    with mock.patch.object(config, "_resolve_type", lambda cls, f: typing.get_type_hints(cls)[f.name]):
        old = median_s(lambda: config.RunConfig.from_dict(d), args.rounds)
    rows.append(("config read", old, new))
    new = median_s(lambda: build_model(args.backbone, 3, "none", initialise=False), args.rounds)
    old = median_s(lambda: build_model(args.backbone, 3, "none"), args.rounds)
    rows.append((f"{args.backbone} model load (before its weights)", old, new))
    from engine import structured

    arch = structured.architecture(structured.shrink(build_model(args.backbone, 3, "none")[0], 0.5, 32))
    new = median_s(lambda: structured.rebuild(build_model(args.backbone, 3, "none", initialise=False)[0], arch),
                   args.rounds)
    with mock.patch.object(structured, "skip_init", lambda cls, *a, **k: cls(*a, **k)):
        old = median_s(lambda: structured.rebuild(build_model(args.backbone, 3, "none", initialise=False)[0], arch),
                       args.rounds)
    rows.append(("channel-pruned model load (half width)", old, new))
    sample, work = resolve_path("assets/sample_textures.zip"), tempfile.mkdtemp(prefix="load_costs_")

    def reload(clear: bool) -> None:
        if clear:
            for decoded in list(data._cache.values()):
                decoded.memo.clear()
        data.load_dataset(sample, work, image_size=64)

    new = median_s(lambda: reload(False), args.rounds)
    old = median_s(lambda: reload(True), args.rounds)
    rows.append(("dataset reload (the sample, 64 px)", old, new))
    print(f"torch threads: {args.threads}; median of {args.rounds} rounds")
    print(f"{'':40s} {'earlier way':>15s} {'now':>10s} {'ratio':>7s}")
    for name, old, new in rows:
        print(f"{name:40s} {1000 * old:13.1f} ms {1000 * new:7.1f} ms {old / new:6.1f}x")


if __name__ == "__main__":
    main()
