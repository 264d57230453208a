"""torchrun with two CPU processes (Gloo) against the single-process run of the same config."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(tiny_zip, out: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(tiny_zip), "--backbone", "resnet18", "--pretrained", "none", "--epochs", "2",
            "--image-size", "32", "--batch-size", "8", "--lr", "0.01", "--out", str(out), "--data-dir", str(data_dir),
            "--device", "cpu", "--set", "train.augment=false", "--set", "eval.ood=false", "--quiet", *extra]


def _start(tiny_zip, out: Path, data_dir: Path, nproc: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Launch one CLI training under torchrun (Gloo, `nproc` processes); one torch thread per process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "engine", *_args(tiny_zip, out, data_dir, *extra)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env), out


def _finish(started: tuple[subprocess.Popen, Path]) -> dict:
    proc, out = started
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output
    return json.loads((out / "summary.json").read_text())


def _single(tiny_zip, out: Path, data_dir: Path, *extra: str) -> dict:
    """The same training in this test's own process, on its one torch thread (the command would fit
    torch's threads to the CPUs: kept at one, as the torchrun processes have). A process less to
    start: the imports of a process took about half of a run this small."""
    from engine import paths
    from engine.cli import main

    threads = torch.get_num_threads()
    try:  # the command also registers its uploads folder: kept out of later tests
        with mock.patch.object(torch, "set_num_threads", lambda n: None), \
                mock.patch.object(paths, "_UPLOAD_DIRS", list(paths._UPLOAD_DIRS)):
            assert main(_args(tiny_zip, out, data_dir, *extra)) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads((out / "summary.json").read_text())


def _single_and_ddp(tiny_zip, tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    """The same run in one process (this one) and in two Gloo processes started first, side by side
    (CPU runs are deterministic whatever else runs)."""
    ddp = _start(tiny_zip, tmp_path / "ddp", tmp_path / "d2", 2, *extra)
    with _killed_on_failure(ddp[0]):
        single = _single(tiny_zip, tmp_path / "single", tmp_path / "d1", *extra)
    return single, _finish(ddp)


@contextlib.contextmanager
def _killed_on_failure(*procs: subprocess.Popen):
    """Stop the started torchrun launches when the test fails before waiting for them."""
    try:
        yield
    except BaseException:
        for p in procs:
            p.kill()
            p.wait()
        raise


FROZEN = ("--set", "optim.freeze_blocks=5")


def test_engine_supervises_a_two_gpu_job_with_live_metrics(tiny_cfg, tmp_path, monkeypatch):
    """gpus=(0, 1): the engine launches torchrun with one process per GPU, each seeing only the chosen
    GPUs, and mirrors the child's metrics and progress live. On this machine (no CUDA) the same child
    job runs on the CPU with Gloo, so the launch is real and the run must finish. The whole network
    trains (batch-norm statistics per process: SyncBatchNorm needs a GPU), so the curve is close to,
    not equal to, a single process's, and its training loss must fall."""
    import subprocess as sp

    from engine.worker import Engine

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    launched = []
    real_popen = sp.Popen

    def spy(cmd, *args, **kwargs):
        launched.append((cmd, kwargs.get("env", {})))
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(sp, "Popen", spy)
    eng = Engine(tmp_path / "e")
    try:
        run_id = eng.submit(tiny_cfg("train.epochs=2", "eval.ood=false", "train.device=auto"), gpus=(0, 1))
        assert eng.wait(run_id, 400) == "finished", eng.run_record(run_id).error
        snap = eng.snapshot(run_id)
        assert [e["epoch"] for e in snap.epochs] == [1, 2] and "val_acc" in snap.epochs[-1]
        assert snap.progress.get("processes") == 2
        summary = json.loads((Path(eng.run_record(run_id).run_dir) / "summary.json").read_text())
        assert summary["world_size"] == 2
        losses = [h["train_loss"] for h in summary["history"]]
        assert losses[-1] < losses[0], losses
    finally:
        eng.shutdown()
    (cmd, env), = [(c, e) for c, e in launched if "torch.distributed.run" in c]
    assert "--nproc_per_node=2" in cmd and env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_all_four_methods_under_two_processes_match_one_process(tiny_zip, tmp_path):
    """Every method under torchrun, all at once: with the trunk's batch norm frozen, two Gloo processes
    follow the single-process run step for step (the attack, the pruning masks, AdaFilter's gates and
    WiSE-FT's start model all see the same weights on every process) and rank 0 writes each method's
    results. AdaFilter's random gate choices are off: each process draws its own noise for its own
    images (test_each_process_of_a_job_draws_its_own_noise_for_its_examples), which the single process
    cannot draw alike; with them on, the four together ended 12% apart in training loss, and exactly
    together without them."""
    extra = ["--set", "optim.freeze_blocks=5", "--pretrained", "bundled", "--set", "eval.ood=true",
             "--set", "adversarial.steps=2", "--set", "adversarial.random_start=false", "--set", "wise_ft.alphas=[0,0.5,1]",
             "--set", "adafilter.gumbel=false", "--set", "eval.robust_steps=2", "--set", "eval.robust_steps_each_epoch=1",
             "--set", "eval.robust_subset=8"]  # the robust evaluation under torchrun, at a fifth of its cost
    for m in ("adversarial", "pruning", "adafilter", "wise_ft"):
        extra += ["--set", f"{m}.enabled=true"]
    # the Bayesian search runs on rank 0 alone and every process uses its result
    extra += ["--set", "pruning.auto=true", "--set", "pruning.trials=2", "--set", "pruning.max_fraction=0.9"]
    single, ddp = _single_and_ddp(tiny_zip, tmp_path, *extra)
    assert ddp["world_size"] == 2 and ddp["methods"] == single["methods"]
    for a, b in zip(single["history"], ddp["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)
    assert ddp["pruning_search"]["best_fractions"] == single["pruning_search"]["best_fractions"]
    assert ddp["sparsity"] == pytest.approx(single["sparsity"])
    assert ddp["adversarial"]["steps"] == 2
    assert ddp["adafilter_gate_mean"].keys() == single["adafilter_gate_mean"].keys()
    assert [p["alpha"] for p in ddp["wise_curve"]] == [0.0, 0.5, 1.0]
    for p, q in zip(single["wise_curve"], ddp["wise_curve"]):
        assert q["val_acc"] == pytest.approx(p["val_acc"], abs=1e-6)


def test_gpus_chosen_for_a_run_must_exist_and_fit_its_device(tiny_cfg, tmp_path, monkeypatch):
    from engine.errors import StudioError
    from engine.worker import Engine

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    eng = Engine(tmp_path / "e")
    try:
        for overrides, gpus, message in [(["train.device=cpu"], (0, 1), "device is set to `cpu`"),
                                         (["train.device=auto"], (0, 2), "GPU 2 is not on this machine"),
                                         (["train.device=cuda"], (1, 1), "same GPU was chosen twice")]:
            with pytest.raises(StudioError, match=message):
                eng.submit(tiny_cfg(*overrides), gpus=gpus)
        assert eng.list_runs() == []
        # one GPU chosen: the run trains in the engine's process, on that GPU
        run_id = eng.submit(tiny_cfg("train.device=auto"), gpus=(1,))
        assert eng.run_record(run_id).config["train"]["device"] == "cuda:1"
        assert eng.wait(run_id, 60) == "failed" and "CUDA" in eng.run_record(run_id).error  # none here
    finally:
        eng.shutdown()


def test_two_nodes_match_one_process(tiny_zip, tmp_path):
    """Multi-node: two torchrun launches (one per "machine", each with its own data folder and
    output folder) form one job; every process has LOCAL_RANK 0. Only the node with rank 0 writes
    results. With the trunk frozen (batch norm in eval mode) the two processes must reproduce one
    exactly: this checks sharding, gradient averaging and metric reduction without per-process BN
    noise. (Two processes under one launch, --nproc_per_node=2, are checked with every method on
    by the all-four test above, and by the engine's supervised two-GPU job.)"""
    port = _free_port()
    procs = []
    for node in (0, 1):
        args = _args(tiny_zip, tmp_path / f"node{node}", tmp_path / f"data{node}", *FROZEN)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
               "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "engine", *args]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"}))
    with _killed_on_failure(*procs):
        single = _single(tiny_zip, tmp_path / "single", tmp_path / "d", *FROZEN)
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ddp = json.loads((tmp_path / "node0" / "summary.json").read_text())
    assert not (tmp_path / "node1" / "summary.json").exists()
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    # each process saw half of every batch: the data really was sharded
    assert ddp["images_per_process_per_epoch"] * 2 == single["images_per_process_per_epoch"]
    for a, b in zip(single["history"], ddp["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    assert ddp["val_acc"] == single["val_acc"] and ddp["test_acc"] == single["test_acc"]


def test_each_process_of_a_job_draws_its_own_noise_for_its_examples(resnet_cfg, tmp_path, monkeypatch):
    """Per-example draws from the global random stream (AdaFilter's gate noise, dropout) must differ
    between the processes of a job, as between the examples of one batch in one process: with the
    stream seeded alike on every process, image k of each shard got the same gate noise. The model
    itself must still start the same on every process. (setup_run for ranks 0 and 1 of two, in this
    process, with DDP's wrapper left out: it needs the other process.)"""
    from engine.contract import Reporter
    from engine.methods.adafilter import gate_network
    from engine.train import setup_run

    monkeypatch.setattr("engine.train.DistributedDataParallel", lambda model, **kw: model)
    cfg = resnet_cfg("adafilter.enabled=true", "eval.ood=false")
    images = torch.rand(4, 3, 32, 32)
    gates, weights = {}, {}
    for rank in (0, 1):
        ctx, _ = setup_run(cfg, Reporter(), None, tmp_path / "work", world=(rank, 2))
        weights[rank] = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        network = gate_network(ctx.model)
        network.record = {}
        ctx.model.train()
        with torch.no_grad():
            ctx.model(images)
        gates[rank] = torch.cat([network.record[i].flatten() for i in range(network.num_layers)])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "the same model on every process"
    assert 0.2 < float((gates[0] != gates[1]).float().mean()) < 0.8, "each process draws its own gate noise"


def test_a_continued_job_draws_new_noise_on_every_process(tiny_cfg, tmp_path, monkeypatch):
    """Only rank 0's random streams are saved with a resume point: each process of a continued job
    goes on with streams of its own (its global stream and its augmentation generator), neither the
    other process's nor a replay of the first epochs' draws."""
    import torch.amp

    from engine.contract import Reporter
    from engine.resume import load_resume, save_resume
    from engine.train import setup_run

    monkeypatch.setattr("engine.train.DistributedDataParallel", lambda model, **kw: model)
    cfg = tiny_cfg("eval.ood=false")
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ctx, hooks = setup_run(cfg, Reporter(), tmp_path, tmp_path / "work", world=(0, 2))
    save_resume(tmp_path, ctx, scaler, [], hooks=hooks)  # the end of epoch 1
    first, continued = {}, {}
    for rank in (0, 1):
        ctx, hooks = setup_run(cfg, Reporter(), tmp_path, tmp_path / "work", world=(rank, 2))
        first[rank] = (torch.rand(8).tolist(), torch.rand(8, generator=ctx.device_generator).tolist())
        ctx, hooks = setup_run(cfg, Reporter(), tmp_path, tmp_path / "work", world=(rank, 2))
        assert load_resume(tmp_path, ctx, scaler, hooks)[0] == 1
        continued[rank] = (torch.rand(8).tolist(), torch.rand(8, generator=ctx.device_generator).tolist())
    draws = [first[0], first[1], continued[0], continued[1]]
    for stream in (0, 1):  # the global stream, the augmentation generator
        assert len({tuple(d[stream]) for d in draws}) == 4, stream
