"""User checkpoints and the pruned model's export: what a new user brings from other tools.

- Files are read by content, not by name: safetensors, torch.save zip files and the legacy
  pickle format, called `.pth.tar`, `.ckpt`, `.bin` or nothing at all.
- Training checkpoints are unwrapped (`state_dict`, `model`, `ema` ...) and the key prefix that
  makes them fit the backbone is removed (`_orig_mod.` from torch.compile, `module.`, MoCo's
  `encoder_q.`), so every tensor matches.
- A checkpoint of another architecture is refused, naming the registered backbone it looks like,
  by the engine, the command line (non-zero exit) and the dashboard's uploader alike.
- A run with structured pruning exports its channel-pruned network as verified TorchScript and
  ONNX files, smaller than the full model's, and the Export tab offers it first.

The state dicts are generated: the key names and shapes of real torchvision models (built on the
meta device, so nothing is allocated), each tensor a single value broadcast to its shape. A
torch.save file stores the one value, so a ResNet-50's complete state dict is a 90 KB file, and
each tensor's value (its index) shows that it landed in the right layer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.backbones import (BACKBONES, CHECKPOINT_FORMATS, CHECKPOINT_SUFFIXES, _registry_shapes, build_model,
                              checkpoint_format, guess_architecture, read_checkpoint)
from engine.errors import StudioError

ROOT = Path(__file__).resolve().parent.parent


def generated_state(name: str, prefix: str = "", contiguous: bool = False) -> dict[str, torch.Tensor]:
    """A state dict with backbone `name`'s exact keys and shapes; tensor i holds the value i."""
    out = {}
    for i, (key, shape) in enumerate(_registry_shapes(name).items()):
        dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        t = torch.full((), i, dtype=dtype).expand(shape)
        out[prefix + key] = t.contiguous() if contiguous else t
    return out


def body_keys(name: str) -> list[str]:
    """The backbone's tensors that a checkpoint supplies (its classification head is replaced)."""
    head = BACKBONES[name].head_attr + "."
    return [k for k in _registry_shapes(name) if not k.startswith(head)]


def assert_all_loaded(model, report, name: str) -> None:
    keys = body_keys(name)
    assert report.matched == len(keys), report.to_dict()
    assert not report.unexpected and not report.shape_mismatch and not report.missing
    own = model.net.state_dict()
    index = {k: i for i, k in enumerate(_registry_shapes(name))}
    for key in keys:  # every tensor landed in its own layer
        assert (own[key] == index[key]).all(), key


# ---- 7: formats by content, wrappers, prefixes ----------------------------------------------------

def write_format(kind: str, state: dict, path: Path) -> Path:
    if kind == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif kind == "torch_zip":
        torch.save(state, path)
    else:
        torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


@pytest.mark.parametrize("kind", list(CHECKPOINT_FORMATS))
def test_the_format_is_read_from_the_bytes_whatever_the_file_is_called(tmp_path, kind):
    state = generated_state("mobilenet_v3_small")
    original = write_format(kind, state, tmp_path / "original")
    for name in ("model_best.pth.tar", "last.ckpt", "pytorch_model.bin", "weights.pt", "weights.safetensors",
                 "no_suffix"):
        path = tmp_path / name
        shutil.copyfile(original, path)
        assert checkpoint_format(path) == kind, name
        model, report = build_model("mobilenet_v3_small", 3, "checkpoint", str(path))
        assert_all_loaded(model, report, "mobilenet_v3_small")


WRAPPED = {  # how other tools save a ResNet-18, as in the bug reports users file against them
    "ImageNet example (model_best.pth.tar)": lambda s: {
        "epoch": 90, "arch": "resnet18", "best_acc1": torch.tensor(69.8),
        "state_dict": {"module." + k: v for k, v in s.items()}, "optimizer": {"state": {}, "param_groups": []}},
    "torch.compile": lambda s: {"_orig_mod." + k: v for k, v in s.items()},
    "torch.compile inside DistributedDataParallel": lambda s: {"module._orig_mod." + k: v for k, v in s.items()},
    "Lightning": lambda s: {"epoch": 3, "global_step": 120, "state_dict": {"model.backbone." + k: v for k, v in s.items()},
                            "hyper_parameters": {"lr": 0.1, "name": "resnet18"}},
    "model_state_dict": lambda s: {"model_state_dict": s, "loss": 0.3},
    "EMA trainer": lambda s: {"model": s, "ema": {k: v.clone() for k, v in s.items()}, "updates": 1000},
    "only an EMA copy": lambda s: {"ema": {"module": s}},
    "MoCo (query and key encoders)": lambda s: {"state_dict": {
        **{"module.encoder_q." + k: v for k, v in s.items()},
        **{"module.encoder_k." + k: v for k, v in s.items()}, "module.queue": torch.zeros(128, 16)}},
    "this studio's own checkpoint": lambda s: {"net." + k: v for k, v in s.items()},
}


@pytest.mark.parametrize("wrapper", list(WRAPPED))
def test_wrappers_are_unwrapped_and_prefixes_removed_so_every_tensor_matches(tmp_path, wrapper):
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(WRAPPED[wrapper](generated_state("resnet18")), path)
    model, report = build_model("resnet18", 5, "checkpoint", str(path))
    assert_all_loaded(model, report, "resnet18")
    assert model.head.out_features == 5
    if wrapper == "torch.compile":
        assert report.prefix == "_orig_mod." and "the prefix `_orig_mod.` that a training wrapper adds to every weight's name removed" in report.note
    if wrapper == "this studio's own checkpoint":
        assert "the prefix `net.` (this studio's own) removed from every weight's name" in report.note, report.note
    if wrapper == "EMA trainer":
        assert report.entry == "model", "the model, not its EMA copy, unless only the copy is there"
    if wrapper == "only an EMA copy":
        assert report.entry == "ema > module"
    if wrapper.startswith("MoCo"):
        assert report.prefix == "module.encoder_q." and len(report.ignored) == len(body_keys("resnet18")) + 3


def test_a_few_extra_tensors_are_reported_but_do_not_refuse_the_file(tmp_path):
    """A SimCLR-style file: the backbone plus a projection head the studio has no use for."""
    state = generated_state("resnet18")
    state.update({"projector.0.weight": torch.zeros(128, 512), "projector.0.bias": torch.zeros(128),
                  "projector.2.weight": torch.zeros(64, 128), "projector.2.bias": torch.zeros(64)})
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "simclr.safetensors"))
    model, report = build_model("resnet18", 3, "checkpoint", str(tmp_path / "simclr.safetensors"))
    assert report.matched == len(body_keys("resnet18")) and len(report.unexpected) == 4


def test_a_file_with_only_part_of_the_backbone_loads_with_a_warning(tmp_path):
    save_file({"conv1.weight": torch.ones(64, 3, 7, 7)}, str(tmp_path / "stem.safetensors"))
    model, report = build_model("resnet18", 3, "checkpoint", str(tmp_path / "stem.safetensors"))
    assert report.matched == 1 and report.partial and "stay random" in report.note
    assert (model.net.conv1.weight == 1).all()


# ---- 8: another architecture is refused, naming what it looks like -------------------------------

@pytest.mark.parametrize("file_arch, chosen, title", [
    ("resnet50", "resnet18", "ResNet-50"),  # the report: 97 "matched" by name, 23 mis-shaped, 198 unexpected
    ("resnet18", "resnet50", "ResNet-18"),  # every name exists in ResNet-50; 23 shapes differ
    ("mobilenet_v3_large", "mobilenet_v3_small", "MobileNetV3-Large"),
    ("efficientnet_b0", "resnet18", "EfficientNet-B0"),
])
def test_a_checkpoint_of_another_architecture_is_refused_and_named(tmp_path, file_arch, chosen, title):
    path = tmp_path / "downloaded.pth"
    torch.save({"state_dict": generated_state(file_arch, prefix="module.")}, path)
    with pytest.raises(StudioError) as exc:
        build_model(chosen, 3, "checkpoint", str(path), checkpoint_label="my_weights.pth")
    msg = str(exc.value)
    assert f"looks like {title} weights" in msg and f"`{file_arch}`" in msg, msg
    assert "my_weights.pth" in msg and chosen in msg


def test_the_architecture_guess_names_every_registered_backbone_from_its_own_weights():
    for name in BACKBONES:
        guess = guess_architecture(generated_state(name, prefix="_orig_mod."))
        assert guess is not None and guess[0] == name and guess[1] == 1.0


def test_a_file_of_an_unregistered_architecture_says_so(tmp_path):
    import torchvision

    with torch.device("meta"):
        vgg = {k: tuple(v.shape) for k, v in torchvision.models.vgg11(weights=None).state_dict().items()}
    torch.save({k: torch.zeros(()).expand(s) for k, s in vgg.items()}, tmp_path / "vgg11.pth")
    with pytest.raises(StudioError, match="does not look like any backbone registered here"):
        build_model("mobilenet_v3_small", 3, "checkpoint", str(tmp_path / "vgg11.pth"))


# ---- files that are not weights, or carry code ------------------------------------------------------

def test_a_pickled_whole_model_is_refused_as_code_naming_the_class(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "whole_model.pt")
    with pytest.raises(StudioError, match="could run code") as exc:
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "whole_model.pt"))
    assert "torch.nn.modules" in str(exc.value), "the message names what is inside"


def test_a_legacy_format_file_with_python_objects_is_refused_as_code(tmp_path):
    import datetime

    torch.save({"saved_on": datetime.date(2020, 1, 1), "state_dict": generated_state("resnet18")},
               tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(StudioError, match="could run code") as exc:
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "old.pth"))
    assert "datetime.date" in str(exc.value)


def test_files_that_are_no_checkpoint_say_what_is_read(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    (tmp_path / "photo.pth").write_bytes(buf.getvalue())
    with pytest.raises(StudioError, match="photo.pth is not a model checkpoint the studio can read: its contents are "
                                          "neither a safetensors file nor a file that PyTorch's torch.save wrote") as exc:
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "photo.pth"))
    assert "weights_only" not in str(exc.value) and "pickle" not in str(exc.value), "no jargon"

    with zipfile.ZipFile(tmp_path / "data.pt", "w") as zf:
        zf.writestr("cats/1.png", buf.getvalue())
    with pytest.raises(StudioError, match="zip archive but not a PyTorch checkpoint"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "data.pt"))
    torch.save(generated_state("resnet18"), tmp_path / "whole.pth")
    whole = (tmp_path / "whole.pth").read_bytes()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in generated_state("resnet18").items()}, str(tmp_path / "whole.safetensors"))
    torch.save(generated_state("resnet18"), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    # interrupted downloads, half of each file: said in those words, not the libraries' ("incomplete metadata")
    safe, legacy = (tmp_path / "whole.safetensors").read_bytes(), (tmp_path / "legacy.pth").read_bytes()
    for name, data in (("cut.pth", whole[:len(whole) // 2]), ("cut.pth", whole[:5000]),
                       ("cut.safetensors", safe[:-1000]), ("cut.safetensors", safe[:200]),
                       *((f"cut_legacy_{n}.pth", legacy[:n]) for n in (19, 97, 388, len(legacy) - 1000))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(StudioError, match=f"{name} looks cut short: the file ends before its contents do, as "
                                              "after an interrupted copy or download"):
            build_model("resnet18", 3, "checkpoint", str(tmp_path / name))
    torch.save({"w": torch.zeros(3)}, tmp_path / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    tiny = (tmp_path / "tiny_legacy.pth").read_bytes()
    for n in range(2, len(tiny)):  # cut at every byte: inside a class name the pickle fails, not the read
        (tmp_path / "cut_tiny.pth").write_bytes(tiny[:n])
        with pytest.raises(StudioError, match="looks cut short"):
            read_checkpoint(tmp_path / "cut_tiny.pth")
    damaged = bytearray(whole)
    damaged[len(whole) // 2:len(whole) // 2 + 4096] = b"\0" * 4096  # whole length, damaged inside: not "cut short"
    (tmp_path / "damaged.pth").write_bytes(bytes(damaged))
    with pytest.raises(StudioError) as exc:
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "damaged.pth"))
    assert "cut short" not in str(exc.value), exc.value
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.ckpt")
    with pytest.raises(StudioError, match="holds no weights"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "empty.ckpt"))


# ---- the command line ---------------------------------------------------------------------------------

def test_cli_refuses_resnet50_weights_for_resnet18_and_loads_a_compiled_pth_tar(tiny_zip, tmp_path, capsys):
    from engine.cli import main

    base = ["train", "--data", str(tiny_zip), "--backbone", "resnet18", "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--data-dir", str(tmp_path / "d"),
            "--set", "eval.ood=false", "--set", "backbone.pretrained=checkpoint"]
    torch.save({"state_dict": generated_state("resnet50")}, tmp_path / "resnet50.pth")
    code = main([*base, "--set", f"backbone.checkpoint={tmp_path / 'resnet50.pth'}"])  # the entry point, in-process
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "looks like ResNet-50 weights" in err, err

    # real (randomly initialised) weights this time, as float16 (23 MB): the run trains on them
    net = build_model("resnet18", 3, "none")[0].net
    weights = {"_orig_mod." + k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": weights}, tmp_path / "model_best.pth.tar")
    out = tmp_path / "run"
    code = main([*base, "--set", f"backbone.checkpoint={tmp_path / 'model_best.pth.tar'}", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "summary.json").read_text())["load_report"]
    assert report["matched"] == len(body_keys("resnet18")) and not report["unexpected"] and not report["missing"]
    assert report["prefix"] == "_orig_mod." and report["entry"] == "state_dict"
    # the file's own head is counted and said: "120 tensors loaded" left an engineer's 2 head tensors unsaid
    assert report["head_tensors"] == 2 and report["head_outputs"] == 3
    assert "a new classification head for your classes (the file's own head, 2 tensors for 3 classes, left out)" \
        in capsys.readouterr().err


def test_the_files_own_head_is_said_where_it_was_replaced():
    from engine.backbones import head_left_out

    mine = {"source": "checkpoint model_best.pth.tar", "head_tensors": 2, "head_outputs": 10}
    assert head_left_out(mine) == "2 tensors for 10 classes"
    assert head_left_out({**mine, "head_outputs": None, "head_tensors": 1}) == "1 tensor", "no weight: no class count"
    assert head_left_out({**mine, "head_kept": True}) == "", "kept: nothing left out"
    assert head_left_out({**mine, "file_classes": ["a", "b"]}) == "", "a studio file's note says it"
    assert head_left_out({**mine, "source": "imagenet"}) == "", "ImageNet's 1000-class head goes without saying"
    assert head_left_out({"source": "checkpoint x.pt", "matched": 120}) == "", "no head, or a summary from before"


# ---- the dashboard's uploader ---------------------------------------------------------------------------

@pytest.fixture
def model_page(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "studio"))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/model.py").run()
    at.radio(key="w:backbone.pretrained").set_value("checkpoint").run()
    yield at
    from app.state import get_engine

    get_engine().shutdown(5)
    st.cache_resource.clear()


def upload(at, name: str, data: bytes):
    at.file_uploader(key="upload_ckpt").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_uploader_takes_every_name_the_engine_reads(model_page, tmp_path):
    torch.save({"state_dict": generated_state("resnet18", prefix="_orig_mod.")}, tmp_path / "w")
    data = (tmp_path / "w").read_bytes()
    n = len(body_keys("resnet18"))
    for name in ("model_best.pth.tar", "epoch=3.ckpt", "pytorch_model.bin", "weights.pth", "weights.pt"):
        assert name.rsplit(".", 1)[-1] in CHECKPOINT_SUFFIXES
        upload(model_page, name, data)
        success = [str(s.value) for s in model_page.success]
        from app.state import md_text  # the user's file name, escaped for markdown ("model\\_best")

        assert any(f"**{md_text(name)}** fits ResNet-18: {n} weight tensors" in s and "_orig_mod." in s
                   for s in success), \
            (success, [str(e.value) for e in model_page.error])
        assert model_page.session_state["cfg"].backbone.checkpoint, "the file is the run's start"


def test_the_uploader_says_which_classes_a_studio_model_keeps_its_head_for(model_page, tmp_path):
    from engine.checkpoints import save_checkpoint
    from engine.config import RunConfig

    net = build_model("resnet18", 3, "none")[0]
    save_checkpoint(tmp_path / "m.safetensors", net.state_dict(), RunConfig(), {"classes": ["oak", "ash_tree", "elm"]})
    upload(model_page, "my-model.safetensors", (tmp_path / "m.safetensors").read_bytes())
    success = " ".join(str(s.value) for s in model_page.success)
    assert ("trained on other classes (oak, ash\\_tree, elm) than your dataset's 8: a new classification head"
            in success), success

    # the sample's own classes, in label order: this file keeps its head on the sample (the default dataset)
    with zipfile.ZipFile(ROOT / "assets" / "sample_textures.zip") as zf:
        sample = sorted({n.split("/")[-2] for n in zf.namelist() if n.count("/") >= 1 and not n.endswith("/")})
    save_checkpoint(tmp_path / "s.safetensors", net.state_dict() | {"net.fc.weight": torch.zeros(len(sample), 512),
                                                                   "net.fc.bias": torch.zeros(len(sample))},
                    RunConfig(), {"classes": sample})
    upload(model_page, "sample-model.safetensors", (tmp_path / "s.safetensors").read_bytes())
    success = " ".join(str(s.value) for s in model_page.success)
    assert f"trained on your dataset's {len(sample)} classes" in success and "head is kept" in success, success
    # one sentence for both states of the WiSE-FT switch drawn below it (a state-dependent one went stale)
    assert "unless WiSE-FT is on, which fits a new head on your images first" in success, success

    # a preset for the same network keeps the checkpoint, and says so
    ckpt = model_page.session_state["cfg"].backbone.checkpoint
    model_page.button(key="preset_adversarial_demo").click().run()
    assert model_page.session_state["cfg"].backbone.checkpoint == ckpt
    assert model_page.session_state["cfg"].backbone.pretrained == "checkpoint"
    assert any("It starts from your checkpoint, as before." in str(s.value) for s in model_page.success)

    # after a refresh (a new session) the file in use is still named, with its verdict
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.switch_page("app_pages/model.py").run()  # the refresh is on the Model page: the Data page is not drawn
    success = " ".join(str(s.value) for s in at.success)
    assert "Starting from **sample-model.safetensors** (uploaded before)" in success, success
    (caption,) = [c.value for c in at.sidebar.caption if "ResNet-18** (your checkpoint" in c.value]
    assert "(your checkpoint sample-model.safetensors) on" in caption, "the sidebar's next run names the file"
    # the engine skips the preset's two head-only epochs for a kept head: the next-run lines say so too
    assert at.session_state["cfg"].optim.linear_probe_epochs == 2
    assert "train only the new head" not in caption and "own head kept, so no head-only epochs" in caption, caption
    # and with the head verdict for the dataset itself, not the rule: the engine still holds the sample decoded,
    # so the Model page redoes the check without decoding (before, it waited for a visit to the Data page)
    assert f"trained on your dataset's {len(sample)} classes" in success and "head is kept" in success, success
    assert at.selectbox(key="ckpt_earlier").value == at.session_state["cfg"].backbone.checkpoint

    # an earlier upload can be picked again; one deleted since is said, and no longer the run's start
    sha = hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest()
    first = f"upload:{sha}"  # the values are the uploads' references; the names are how they are shown
    assert at.session_state["cfg"].backbone.checkpoint != first
    at.selectbox(key="ckpt_earlier").set_value(first).run()
    assert at.session_state["cfg"].backbone.checkpoint == first
    assert any("Starting from **my-model.safetensors**" in str(s.value) for s in at.success)
    for f in (tmp_path / "studio" / "uploads").glob(sha[:32] + ".*"):
        f.unlink()
    at.run()
    assert any("no longer on the server" in str(e.value) for e in at.error)
    assert at.session_state["cfg"].backbone.checkpoint == ""


def test_the_uploader_refuses_another_architecture_with_the_engines_verdict(model_page, tmp_path):
    torch.save(generated_state("resnet50"), tmp_path / "r50")
    upload(model_page, "resnet50-weights.pth", (tmp_path / "r50").read_bytes())
    errors = [str(e.value) for e in model_page.error]
    assert any("resnet50-weights.pth" in e and "looks like ResNet-50 weights" in e for e in errors), errors
    assert not model_page.success
    assert model_page.session_state["cfg"].backbone.checkpoint == "", "a refused file is not used"
    sha = hashlib.sha256((tmp_path / "r50").read_bytes()).hexdigest()
    assert not list((tmp_path / "studio" / "uploads").glob(sha[:32] + ".*")), "nor kept on the server"


# ---- 9: the pruned model goes home as TorchScript and ONNX ----------------------------------------------

@pytest.fixture(scope="module")
def structured_run(tmp_path_factory):
    """A finished run with structured pruning, trained by the dashboard's engine: (engine, run id)."""
    from conftest import RANDOM_RESNET18, dashboard_studio, finished_run, tiny_config

    with dashboard_studio(tmp_path_factory.mktemp("structured")) as studio:
        cfg = tiny_config(studio["data"], *RANDOM_RESNET18, "pruning.enabled=true", "pruning.target_sparsity=0.5",
                          "pruning.structured=true", "pruning.channel_fraction=0.5", "train.epochs=1",
                          "train.threads=1", "eval.ood=false")
        yield studio["engine"], finished_run(studio["engine"], cfg)


def test_a_structured_run_exports_its_pruned_model_verified_and_smaller(structured_run, tmp_path):
    import onnx

    from engine.export import export_all
    from engine.runs import load_run

    eng, run_id = structured_run
    run_dir = Path(eng.run_record(run_id).run_dir)
    b = load_run(run_dir, eng.datasets_dir)
    s = b.summary["structured"]
    small = b.model_variant("structured")
    assert sum(p.numel() for p in small.parameters()) == s["params_after"] < 0.5 * s["params_before"]
    checks = export_all(small, b.cfg, b.summary, b.data.val.images, tmp_path, structured=True)
    assert [c.format for c in checks] == ["safetensors", "torchscript", "onnx"]
    assert all(c.ok and c.agreement == 1.0 for c in checks), [c.message for c in checks]

    onnx_bytes = (tmp_path / "model.onnx").stat().st_size
    assert onnx_bytes < 0.5 * s["file_bytes_before"], "the ONNX file is the pruned network, not the full one"
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    stem = next(i for i in graph.initializer if tuple(i.dims)[1:] == (3, 7, 7))
    assert stem.dims[0] < 64, "the stem has fewer channels than ResNet-18's 64"
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    assert sum(p.numel() for p in scripted.parameters()) == s["params_after"]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "this is the channel-pruned model" in card and f"{s['params_after']:,} parameters" in card


def test_the_export_tab_offers_the_pruned_model_first_and_verifies_it(structured_run):
    from streamlit.testing.v1 import AppTest

    eng, run_id = structured_run
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/explain.py")
    at.session_state["explain_run"] = run_id
    at.session_state["explain_tab"] = "Export"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    radio = at.radio(key=f"export_which_{run_id}")
    assert radio.value == "structured" and radio.options[0].startswith("smaller, channel-pruned"), radio.options
    assert "structured" in " ".join(str(c.value) for c in at.caption), "it says where the files go"
    at.button(key=f"export_{run_id}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("All 3 exports verified" in str(s.value) for s in at.success), [s.value for s in at.success]
    out = Path(eng.run_record(run_id).run_dir) / "exports" / "structured"
    summary = json.loads((out.parent.parent / "summary.json").read_text())
    assert (out / "model.ts").is_file()
    assert (out / "model.onnx").stat().st_size < 0.5 * summary["structured"]["file_bytes_before"]
    assert "this is the channel-pruned model" in " ".join(str(m.value) for m in at.markdown)
    # the full model is still one choice away, in its own folder
    at.radio(key=f"export_which_{run_id}").set_value("fine_tuned").run()
    assert any("Nothing exported yet" in str(c.value) for c in at.caption)


# ---- continuing from one's own model: the head is kept for the same classes -------------------------------

def test_a_studio_checkpoint_keeps_its_head_for_the_same_classes_only(resnet_cfg, tmp_path):
    from engine.backbones import checkpoint_classes
    from engine.train import train

    (tmp_path / "run").mkdir()
    res = train(resnet_cfg("train.epochs=1", "eval.ood=false"), run_dir=tmp_path / "run", work_dir=tmp_path / "d")
    classes = list(res.context.data.classes)
    for name in ("last", "best"):
        assert checkpoint_classes(tmp_path / "run" / f"{name}.safetensors") == classes
    trained = res.context.model.cpu().eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = trained(x)

    ckpt = str(tmp_path / "run" / "last.safetensors")
    same, report = build_model("resnet18", len(classes), "checkpoint", ckpt, classes=classes)
    assert report.head_kept and report.file_classes == classes and "head kept" in report.note
    with torch.no_grad():
        torch.testing.assert_close(same.eval()(x), expected)  # the very model that was trained

    # other classes (or the same names in another order) mean another task: a fresh head, as before
    for other in (classes[::-1], classes[:-1] + ["blue"]):
        fresh, report = build_model("resnet18", len(other), "checkpoint", ckpt, classes=other)
        assert not report.head_kept and "head kept" not in report.note and "new classification head" in report.note
        assert f"the file was trained on {len(classes)} other classes" in report.note
    # the same model saved by another wrapper (DistributedDataParallel's `module.`) keeps its head too
    from engine.checkpoints import save_checkpoint

    wrapped = {"module." + k: v for k, v in trained.state_dict().items()}
    save_checkpoint(tmp_path / "ddp.safetensors", wrapped, resnet_cfg(), {"classes": classes})
    ddp, report = build_model("resnet18", len(classes), "checkpoint", str(tmp_path / "ddp.safetensors"), classes=classes)
    assert report.head_kept and report.prefix == "module.net."
    with torch.no_grad():
        torch.testing.assert_close(ddp.eval()(x), expected)
    # a file that does not say its classes (a plain state dict) never keeps its head
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, tmp_path / "plain.safetensors")
    _, report = build_model("resnet18", len(classes), "checkpoint", str(tmp_path / "plain.safetensors"), classes=classes)
    assert report.file_classes is None and not report.head_kept

    # a run started from it says so in its summary, and skips LP-FT's head-only epochs (the head is trained)
    cont = train(resnet_cfg("train.epochs=2", "optim.linear_probe_epochs=1", "eval.ood=false",
                            "backbone.pretrained=checkpoint", f"backbone.checkpoint={ckpt}"), work_dir=tmp_path / "d")
    assert cont.summary["load_report"]["head_kept"] is True
    assert "head-only (linear-probe) epochs are skipped" in cont.summary["load_report"]["note"]
    assert cont.context.cfg.optim.linear_probe_epochs == 0
    assert cont.summary["probe_epochs"] == 0, "the record the accuracy chart's epoch-3 note reads"


def test_gated_and_channel_pruned_studio_models_are_refused_as_a_start_in_plain_words(tmp_path):
    from engine.checkpoints import save_checkpoint
    from engine.config import RunConfig, apply_overrides

    net = build_model("resnet18", 3, "none")[0]
    ada = apply_overrides(RunConfig(), ["adafilter.enabled=true"])
    save_checkpoint(tmp_path / "ada.safetensors", net.state_dict(), ada, {"classes": ["a", "b", "c"]})
    with pytest.raises(StudioError, match="trained with AdaFilter: it holds two copies of every filter"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "ada.safetensors"), checkpoint_label="mine.safetensors")
    save_checkpoint(tmp_path / "pruned.safetensors", net.state_dict(), RunConfig(), {"structured_arch": {"x": 1}})
    with pytest.raises(StudioError, match="mine.safetensors is a channel-pruned studio model"):
        build_model("resnet18", 3, "checkpoint", str(tmp_path / "pruned.safetensors"), checkpoint_label="mine.safetensors")
    save_checkpoint(tmp_path / "plain.safetensors", net.state_dict(), RunConfig(), {"classes": ["a", "b", "c"]})
    assert build_model("resnet18", 3, "checkpoint", str(tmp_path / "plain.safetensors"))[1].matched


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_a_saved_checkpoint_has_the_mode_the_umask_gives_every_other_file(tmp_path, umask, mode):
    # safetensors alone creates owner-only files, so an exported model.safetensors was 0600 beside a 0644 model card
    from engine.checkpoints import save_checkpoint

    before = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {"x": 1})
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == mode
