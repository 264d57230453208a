"""Precision on the CPU: `train.amp: auto` is bf16 only on a CPU with bf16 instructions where the
measurement found it faster (cached per machine), an explicit `train.amp` is honoured or refused
in plain words, and a bf16 run reaches the accuracy of the fp32 run."""

from __future__ import annotations

import json

import pytest
import torch

from engine import devices
from engine.devices import pick_amp, use_channels_last
from engine.errors import StudioError
from engine.train import train
from conftest import tiny_config, write_tiny_zip

CPU = torch.device("cpu")
FAST_BF16 = {"fp32": 80.0, "fp32_channels_last": 60.0, "bf16_channels_last": 35.0}


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No pinned precision, an empty cache in tmp_path, and the per-process decision forgotten."""
    monkeypatch.delenv(devices.CPU_PRECISION_ENV, raising=False)
    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path))
    devices.cpu_precision.cache_clear()
    yield tmp_path
    devices.cpu_precision.cache_clear()


def fake_cpu(monkeypatch, flags: set[str], capability: str, step_ms: dict[str, float] | None) -> list[int]:
    """A CPU with these flags and PyTorch capability; its measurement returns `step_ms` (None: the
    test fails if it is measured). Returns a list that counts the measurements."""
    calls = []
    monkeypatch.setattr(devices, "cpu_info", lambda: ("Test CPU 9000", flags))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)

    def measure(image_size=64):
        assert step_ms is not None, "a CPU without bf16 must not be measured"
        calls.append(image_size)
        return dict(step_ms[image_size] if image_size in step_ms else step_ms)

    monkeypatch.setattr(devices, "measure_cpu_precision", measure)
    return calls


def test_cpu_without_bf16_stays_fp32_unmeasured(monkeypatch, fresh):
    fake_cpu(monkeypatch, {"avx2", "fma", "avx512f"}, "AVX512", None)
    assert pick_amp("auto", CPU) is None
    assert use_channels_last(True, CPU, None) is False
    assert devices.cpu_precision().source == "no_bf16"


def test_bf16_cpu_is_measured_once_and_cached(monkeypatch, fresh):
    calls = fake_cpu(monkeypatch, {"avx512f", "avx512_bf16", "amx_bf16"}, "AVX512", FAST_BF16)
    assert pick_amp("auto", CPU) is torch.bfloat16
    assert use_channels_last(True, CPU, torch.bfloat16) is True
    assert use_channels_last(False, CPU, torch.bfloat16) is False  # the user's switch still turns it off
    cache = devices.cpu_precision_cache()
    assert cache.is_relative_to(fresh) and "Test CPU 9000" in next(iter(json.loads(cache.read_text())))
    devices.cpu_precision.cache_clear()  # a new process on the same machine
    assert pick_amp("auto", CPU) is torch.bfloat16 and devices.cpu_precision().source == "cache"
    assert len(calls) == 1


def test_bf16_capable_cpu_where_bf16_is_slower_stays_fp32(monkeypatch, fresh):
    fake_cpu(monkeypatch, set(), "AVX512_BF16", {"fp32": 50.0, "fp32_channels_last": 52.0, "bf16_channels_last": 48.0})
    assert devices.cpu_has_bf16()  # named by PyTorch's capability alone
    assert pick_amp("auto", CPU) is None
    assert use_channels_last(True, CPU, None) is False  # channels_last was not faster in fp32 either


def test_the_choice_is_made_per_image_size(monkeypatch, fresh):
    """bf16 can be faster at 64 px and slower at 32 px on the same CPU (measured here: 0.78x at 32):
    each size is measured once, on its own, and decided on its own."""
    slow_small = {"fp32": 130.0, "fp32_channels_last": 150.0, "bf16_channels_last": 160.0}
    calls = fake_cpu(monkeypatch, {"avx512_bf16"}, "AVX512", {32: slow_small, 64: FAST_BF16})
    assert pick_amp("auto", CPU, 32) is None and use_channels_last(True, CPU, None, 32) is False
    assert pick_amp("auto", CPU, 64) is torch.bfloat16 and pick_amp("auto", CPU, 60) is torch.bfloat16
    assert pick_amp("auto", CPU, 30) is None  # rounded to the 32 px measurement
    assert calls == [32, 64]
    assert devices.precision_size(None) == 64 and devices.precision_size(224) == 96
    assert len(json.loads(devices.cpu_precision_cache().read_text())) == 2  # one cached entry per size


def test_explicit_amp_is_honoured_or_refused_in_plain_words(monkeypatch, fresh, tiny_cfg):
    fake_cpu(monkeypatch, {"avx2"}, "AVX2", None)
    assert pick_amp("bf16", CPU) is torch.bfloat16  # asked for: used even where it is not the fastest
    assert pick_amp("off", CPU) is None
    with pytest.raises(StudioError, match="fp16 is for GPUs.*choose bf16"):
        train(tiny_cfg("train.amp=fp16", "train.epochs=1", "eval.ood=false"))


def test_measurement_runs_every_variant():
    ms = devices.measure_cpu_precision(image_size=16, batch=2, rounds=1)
    assert set(ms) == {"fp32", "fp32_channels_last", "bf16_channels_last"} and all(v > 0 for v in ms.values())


def test_bf16_run_reaches_the_fp32_accuracy(tmp_path):
    data = write_tiny_zip(tmp_path / "forty.zip", per_class=40)  # 24 test images
    # the dashboard's default model, a ResNet-18, 2 epochs from its bundled weights (1 already reaches 100% test in
    # both precisions on the Zen 3, one thread); its new head's rate is capped, in bf16 as in fp32
    runs = {amp: train(tiny_config(data, f"train.amp={amp}", "backbone.name=resnet18", "backbone.pretrained=bundled",
                                   "train.epochs=2", "eval.ood=false")).summary
            for amp in ("off", "bf16")}
    assert runs["bf16"]["precision"] == "bfloat16" and runs["bf16"]["channels_last"] is True
    assert runs["off"]["precision"] == "float32" and runs["off"]["channels_last"] is False
    assert all("head_lr_capped" in s for s in runs.values()), "the head's rate is capped in both precisions"
    accs = {amp: s["test_acc"] for amp, s in runs.items()}
    assert accs["off"] >= 0.8, accs  # the tiny classes (red, green, stripes) are learnt in fp32
    assert accs["bf16"] >= 0.8 and abs(accs["bf16"] - accs["off"]) <= 0.17, accs  # within 4 of 24 images


def test_a_finished_run_is_answered_in_the_precision_it_evaluated_in(monkeypatch):
    """Explain, Try it and predict take the summary's recorded precision on the device kind the run
    used, and this machine's choice elsewhere (a GPU run's fp16 on a CPU)."""
    import torch

    from engine import devices

    monkeypatch.setattr(devices, "pick_amp", lambda *a, **k: "here")
    cpu = torch.device("cpu")
    assert devices.run_amp_dtype({"device": "cpu", "precision": "bfloat16"}, "auto", cpu, 64) is torch.bfloat16
    assert devices.run_amp_dtype({"device": "cpu", "precision": "float32"}, "auto", cpu, 64) is None
    assert devices.run_amp_dtype({"device": "cuda:0", "precision": "float16"}, "auto", cpu, 64) == "here"
    assert devices.run_amp_dtype({}, "auto", cpu, 64) == "here"
    assert devices.run_amp_dtype({"device": "cpu", "precision": "nonsense"}, "auto", cpu, 64) == "here"
    # where the answer is this machine's choice, predict and Try it do not say "as the run was evaluated"
    from engine.backbones import build_model
    from engine.config import RunConfig
    from engine.predict import Predictor

    model = build_model("resnet18", 2, "none")[0]
    for summary, same in (({"device": "cpu", "precision": "bfloat16"}, True), ({"device": "cpu"}, False),
                          ({"device": "cuda:0", "precision": "bfloat16"}, False), ({}, False)):
        assert devices.evaluated_precision_here(summary, cpu) is same, summary
        p = Predictor(model, RunConfig(), ["a", "b"], "fine_tuned", None, cpu, summary=summary)
        assert p.as_evaluated is same, summary


def test_a_bf16_predictor_answers_channels_last_with_the_nchw_answers():
    """Try it and `predict` run a bf16 model channels_last (1.3-1.6x faster on the CPU,
    benchmarks/inference_layout.py), fp32 and a run that turned the layout off stay NCHW, and the
    layout changes no answer beyond bf16 rounding."""
    from engine.backbones import build_model
    from engine.config import RunConfig, apply_overrides
    from engine.predict import Predictor

    def predictor(amp: str, channels_last: bool = True) -> Predictor:
        torch.manual_seed(0)
        model, _ = build_model("resnet18", 3, "none")
        cfg = apply_overrides(RunConfig(), ["data.image_size=32", f"train.channels_last={channels_last}"])
        return Predictor(model, cfg, ["a", "b", "c"], "fine_tuned", None, CPU, summary={"device": "cpu", "precision": amp})

    def layout(p: Predictor) -> bool:
        return p.model.net.conv1.weight.is_contiguous(memory_format=torch.channels_last) \
            and not p.model.net.conv1.weight.is_contiguous()

    bf16, fp32, off = predictor("bfloat16"), predictor("float32"), predictor("bfloat16", channels_last=False)
    assert layout(bf16) and not layout(fp32) and not layout(off)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    got, want = bf16.forward(images)[0], off.forward(images)[0]
    assert torch.allclose(got, want, atol=0.03), (got - want).abs().max()


def fake_forward(monkeypatch, ms: dict[str, float] | None) -> list[tuple[str, int]]:
    """A forward-pass layout measurement returning `ms` (None: the test fails if it is measured);
    returns the list of (backbone, size) measured."""
    calls = []
    monkeypatch.setattr(devices, "cpu_info", lambda: ("Test CPU 9000", {"avx2"}))

    def measure(backbone, image_size):
        assert ms is not None, "this layout must not be measured"
        calls.append((backbone, image_size))
        return dict(ms)

    monkeypatch.setattr(devices, "measure_forward_layout", measure)
    devices.cpu_eval_channels_last.cache_clear()
    return calls


def test_evaluation_goes_channels_last_where_measured_faster_once_per_backbone_and_size(monkeypatch, fresh):
    calls = fake_forward(monkeypatch, {"nchw": 100.0, "channels_last": 70.0})  # Zen 3, ResNet-18, 64 px: 1.39x
    assert devices.cpu_eval_channels_last("resnet18", 64) and devices.cpu_eval_channels_last("resnet18", 60)
    assert devices.cpu_eval_channels_last("mobilenet_v3_small", 64)
    devices.cpu_eval_channels_last.cache_clear()  # a new process on the same machine: from the cache
    assert devices.cpu_eval_channels_last("resnet18", 64)
    assert calls == [("resnet18", 64), ("mobilenet_v3_small", 64)]
    entries = json.loads(devices.cpu_precision_cache().read_text())
    assert any(k.endswith("resnet18 forward pass at 64 px") for k in entries), entries

    fake_forward(monkeypatch, {"nchw": 100.0, "channels_last": 95.0})  # within the noise margin: NCHW
    assert not devices.cpu_eval_channels_last("resnet50", 224)
    monkeypatch.setattr(devices, "measure_forward_layout", lambda *a: 1 / 0)  # cannot measure: NCHW, no error
    devices.cpu_eval_channels_last.cache_clear()
    assert not devices.cpu_eval_channels_last("convnext_tiny", 32)
    fake_forward(monkeypatch, None)
    monkeypatch.setenv(devices.CPU_PRECISION_ENV, "fp32")  # pinned (the test suite): NCHW, never measured
    assert not devices.cpu_eval_channels_last("resnet18", 64)
    monkeypatch.setenv(devices.EVAL_LAYOUT_ENV, "channels_last")  # the layout itself pinned (the browser test)
    devices.cpu_eval_channels_last.cache_clear()
    assert devices.cpu_eval_channels_last("resnet18", 64)
    monkeypatch.setenv(devices.EVAL_LAYOUT_ENV, "nchw")
    monkeypatch.delenv(devices.CPU_PRECISION_ENV)
    devices.cpu_eval_channels_last.cache_clear()
    assert not devices.cpu_eval_channels_last("resnet18", 64)
    devices.cpu_eval_channels_last.cache_clear()


def test_a_channels_last_evaluation_answers_as_nchw_and_gives_the_model_back_in_its_layout(monkeypatch, tiny_cfg):
    """The run's model goes channels_last for an evaluation only: the optimiser's fused step wants its
    weights contiguous again afterwards, and the answers are the NCHW ones (float rounding aside)."""
    from engine.backbones import build_model
    from engine.data import DataReport, DataSplits, ImageSet
    from engine.evaluate import epoch_sets, evaluate

    g, names = torch.Generator().manual_seed(0), ["a", "b", "c"]
    split = [ImageSet(torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(24) % 3,
                      names) for _ in range(3)]
    data = DataSplits(*split, names, DataReport("generated", names, {c: 24 for c in names}, [], {}, 32))
    cfg = tiny_cfg("eval.ood=true", "eval.ood_subset_each_epoch=12")
    model, _ = build_model("resnet18", 3, "none")
    sets = epoch_sets(cfg, data)
    seen = []
    model.net.conv1.register_forward_pre_hook(lambda m, args: seen.append(
        (devices.is_channels_last(model), args[0].is_contiguous(memory_format=torch.channels_last))))
    monkeypatch.setattr(devices, "cpu_eval_channels_last", lambda backbone, size: False)
    nchw = evaluate(model, sets, CPU)
    assert seen and not any(cl for cl, _ in seen)
    seen.clear()
    monkeypatch.setattr(devices, "cpu_eval_channels_last", lambda backbone, size: backbone == "resnet18")
    fast = evaluate(model, sets, CPU)
    assert seen and all(cl and x_cl for cl, x_cl in seen), "the model and its input, channels_last"
    assert not devices.is_channels_last(model) and model.net.conv1.weight.is_contiguous(), "given back as it was"
    # the same answers up to float rounding (a near-tie between two classes may flip one image)
    assert fast["val_acc"] == pytest.approx(nchw["val_acc"], abs=1.01 / 24)
    assert fast["ood_acc"] == pytest.approx(nchw["ood_acc"], abs=1.01 / 12)
    assert fast["val_loss"] == pytest.approx(nchw["val_loss"], rel=1e-4)
    seen.clear()
    evaluate(model, sets, CPU, amp_dtype=torch.bfloat16)  # bf16 models are channels_last already when they train
    assert not any(cl for cl, _ in seen), "a bf16 evaluation keeps the layout it is given"
