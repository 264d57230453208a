"""Why tests/test_bundled.py's MobileNetV3-Small linear probe passes on one machine and fails on
another: the test's body, with the CPU thread count as an argument, printing both accuracies.

    python benchmarks/mobilenet_probe_numerics.py 1                       # what pytest uses (conftest: 1 thread)
    python benchmarks/mobilenet_probe_numerics.py 2
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/mobilenet_probe_numerics.py 1   # a CPU without AVX-512

Results on this machine: benchmarks/results/mobilenet_probe_numerics.txt.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from common import ROOT  # noqa: F401  (puts the project on the path)

from engine.backbones import build_model
from engine.config import RunConfig
from engine.methods.wise_ft import fit_linear_probe, head_features
from engine.run_data import prepare_data


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    data = prepare_data(RunConfig(), Path(tempfile.mkdtemp()))
    accs = {}
    for source in ("bundled", "none"):
        torch.manual_seed(0)
        model, _ = build_model("mobilenet_v3_small", len(data.classes), source)
        dev = torch.device("cpu")
        w, b = fit_linear_probe(head_features(model, data.train.images, dev), data.train.labels, len(data.classes))
        feats = head_features(model, data.test.images, dev)
        accs[source] = float(((feats @ w.T + b).argmax(1) == data.test.labels).float().mean())
    verdict = "pass" if accs["bundled"] > accs["none"] + 0.15 else "FAIL"
    print(f"threads {threads}, CPU kernels {torch.backends.cpu.get_cpu_capability()}: {accs} -> {verdict}")


if __name__ == "__main__":
    main()
