"""Shared-server rules enforced by the engine: ownership, data roots, fair limits, password check."""

import os
import time

import pytest

from engine.errors import StudioError
from engine.security import AccessDenied, DataRoots, LimitExceeded, Limits, check_password
from engine.worker import Engine


@pytest.fixture
def shared_engine(tmp_path):
    eng = Engine(tmp_path / "e", access_control=True)
    yield eng
    eng.shutdown()


def test_another_users_run_cannot_be_stopped_opened_or_deleted(shared_engine, tiny_cfg):
    run_id = shared_engine.submit(tiny_cfg("train.epochs=1", "eval.ood=false"), owner="alice")
    with pytest.raises(AccessDenied):
        shared_engine.stop(run_id, user="bob")
    with pytest.raises(AccessDenied):
        shared_engine.authorize(run_id, "bob")
    assert shared_engine.wait(run_id, 300) == "finished"
    with pytest.raises(AccessDenied):
        shared_engine.delete_run(run_id, user="bob")
    assert [r.id for r in shared_engine.visible_runs("bob")] == []
    shared_engine.set_flag(run_id, "alice", "shared", True)
    assert [r.id for r in shared_engine.visible_runs("bob")] == [run_id]
    shared_engine.authorize(run_id, "bob")  # reading a shared run is allowed ...
    with pytest.raises(AccessDenied):
        shared_engine.delete_run(run_id, user="bob")  # ... changing it is not
    shared_engine.delete_run(run_id, user="alice")
    assert shared_engine.run_record(run_id) is None


def test_active_run_limit_per_user(tmp_path, tiny_cfg):
    eng = Engine(tmp_path / "e", limits=Limits(max_active_runs_per_user=1))
    try:
        first = eng.submit(tiny_cfg("train.epochs=30"), owner="alice")
        with pytest.raises(LimitExceeded, match="limit is 1"):
            eng.submit(tiny_cfg(), owner="alice")
        other = eng.submit(tiny_cfg("train.epochs=1"), owner="bob")  # others are not blocked
        eng.stop(first)
        eng.stop(other)
    finally:
        eng.shutdown()


def test_upload_size_limit(tmp_path):
    eng = Engine(tmp_path / "e", limits=Limits(max_upload_bytes=10))
    try:
        with pytest.raises(LimitExceeded, match="at most"):
            eng.save_upload(b"x" * 11, ".zip")
        path = eng.save_upload(b"x" * 5, ".zip")
        assert path.parent == eng.data_dir / "uploads" and path.suffix == ".zip"
        assert eng.save_upload(b"x" * 5, "../../evil.sh").suffix == ".bin", "names never come from the user"
    finally:
        eng.shutdown()


@pytest.mark.parametrize("limits, words", [
    (Limits(max_dataset_images=10), "at most 10"),
    (Limits(max_epoch_images=50), "budget"),
])
def test_dataset_and_compute_budget_limits_fail_the_run_with_a_message(tmp_path, tiny_cfg, limits, words):
    eng = Engine(tmp_path / "e", limits=limits)
    try:
        run_id = eng.submit(tiny_cfg("train.epochs=3"))
        assert eng.wait(run_id, 120) == "failed"
        assert words in eng.run_record(run_id).error
    finally:
        eng.shutdown()


def test_disk_quota_cleans_the_oldest_unpinned_runs_first(tmp_path):
    eng = Engine(tmp_path / "e", limits=Limits(max_runs_disk_bytes=2500))
    try:
        ids = []
        for i in range(3):
            rid = f"r{i}"
            d = eng.data_dir / "runs" / rid
            d.mkdir(parents=True)
            (d / "last.safetensors").write_bytes(b"0" * 1000)
            eng.store.create_run(rid, rid, {}, str(d), status="finished")
            ids.append(rid)
            time.sleep(0.01)
        eng.store.set_flag("r0", "pinned", True)
        removed = eng.enforce_disk_quota()
        assert removed == ["r1"], "r0 is pinned, r1 is the oldest unpinned"
        assert eng.run_record("r0") and eng.run_record("r2") and not (eng.data_dir / "runs" / "r1").exists()
    finally:
        eng.shutdown()


def test_data_roots_refuse_outside_paths_and_escaping_links(tmp_path):
    root = tmp_path / "allowed"
    (root / "set" / "cats").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwd.png").write_bytes(b"x")
    roots = DataRoots((root.resolve(),))
    assert roots.resolve(str(root / "set")) == (root / "set").resolve()
    assert roots.resolve("set") == (root / "set").resolve()  # relative to a root
    with pytest.raises(AccessDenied, match="outside"):
        roots.resolve(str(outside))
    with pytest.raises(AccessDenied, match="outside"):
        roots.resolve(str(root / ".." / "secret"))
    os.symlink(outside, root / "set" / "cats" / "link")
    with pytest.raises(AccessDenied, match="links to a place outside"):
        roots.resolve(str(root / "set"))
    os.symlink(outside, root / "escape")
    with pytest.raises(AccessDenied):
        roots.resolve(str(root / "escape"))
    with pytest.raises(AccessDenied, match="switched off"):
        DataRoots(()).resolve(str(root))


def test_limits_from_environment():
    lim = Limits.from_env({"STUDIO_MAX_ACTIVE_RUNS_PER_USER": "2", "STUDIO_MAX_UPLOAD_BYTES": "1e6"})
    assert lim.max_active_runs_per_user == 2 and lim.max_upload_bytes == 1_000_000
    with pytest.raises(StudioError, match="whole number"):
        Limits.from_env({"STUDIO_MAX_DATASET_IMAGES": "lots"})
    with pytest.raises(StudioError, match="whole number"):  # an OverflowError from int(float("inf")) before
        Limits.from_env({"STUDIO_MAX_DATASET_IMAGES": "inf"})


def test_password_check():
    assert check_password("s3cret", "s3cret")
    assert not check_password("s3cre", "s3cret") and not check_password("", "") and not check_password("x", "")


def test_the_engine_refuses_runs_that_read_outside_the_data_roots(tmp_path, tiny_cfg, tiny_zip):
    root = tmp_path / "allowed"
    root.mkdir()
    eng = Engine(tmp_path / "e", data_roots=DataRoots((root.resolve(),)))
    try:
        with pytest.raises(AccessDenied, match="outside"):
            eng.submit(tiny_cfg())  # the tiny zip lives outside the allowed folder
        upload = eng.save_upload(tiny_zip.read_bytes(), ".zip")  # uploads are always allowed
        run_id = eng.submit(tiny_cfg(f"data.source={upload}", "train.epochs=1", "eval.ood=false"))
        assert eng.wait(run_id, 300) == "finished"
    finally:
        eng.shutdown()


def test_image_pixel_limit_skips_huge_images(tmp_path, tiny_cfg):
    import io
    import zipfile

    from PIL import Image

    from conftest import write_tiny_zip
    from engine.run_data import prepare_data

    path = write_tiny_zip(tmp_path / "d.zip")
    with zipfile.ZipFile(path, "a") as zf:
        buf = io.BytesIO()
        Image.new("RGB", (300, 300), "red").save(buf, format="PNG")
        zf.writestr("red/huge.png", buf.getvalue())
    data = prepare_data(tiny_cfg(f"data.source={path}"), tmp_path / "w", Limits(max_image_pixels=250 * 250))
    skipped = {s.path: s.reason for s in data.report.skipped}
    assert "red/huge.png" in skipped and "too large" in skipped["red/huge.png"]


def test_a_kept_sign_in_names_its_user_until_it_expires_and_nothing_else_passes(tmp_path):
    import stat

    from engine.security import login_key, login_token, login_user

    key = login_key(tmp_path / "e" / "login.key", "class-2026")
    assert stat.S_IMODE((tmp_path / "e" / "login.key").stat().st_mode) == 0o600, "the secret is the server's alone"
    assert login_key(tmp_path / "e" / "login.key", "class-2026") == key, "the same secret on the next start"
    now = 1_800_000_000.0
    token = login_token("Zoë O'Neil", key, now, ttl_s=60)
    assert login_user(token, key, now + 59) == "Zoë O'Neil"
    assert login_user(token, key, now + 61) is None, "expired"
    assert login_user(token, login_key(tmp_path / "e" / "login.key", "class-2027"), now) is None, "new password"
    name, expiry, signature = token.split(".")
    forged = login_token("mallory", b"guess" * 8, now).split(".")
    for bad in (f"{forged[0]}.{expiry}.{signature}", f"{name}.{int(expiry) + 999}.{signature}",
                f"{name}.{expiry}.{signature[:-1]}é", "", None, "a.b", "....", f"{name}.x.{signature}"):
        assert login_user(bad, key, now) is None, bad


def test_sign_in_throttle_waits_after_repeated_wrong_passwords_and_forgets_old_ones():
    from engine.security import SignInThrottle

    now = [0.0]
    t = SignInThrottle(attempts=3, address_attempts=5, window_s=100.0, wait_s=30.0, clock=lambda: now[0])
    for _ in range(2):
        t.failed("10.0.0.7", "mallory")
    assert t.wait_left("10.0.0.7", "mallory") == (0.0, "")
    t.failed("10.0.0.7", "mallory")
    assert t.wait_left("10.0.0.7", "Mallory") == (30.0, "name"), "names compare without letter case"
    assert t.wait_left("10.0.0.7", "alice") == (0.0, ""), "one guesser does not make a class behind one address wait"
    assert t.wait_left("10.0.0.8", "mallory")[0] == 0.0, "per computer"
    now[0] = 20.0
    assert t.wait_left("10.0.0.7", "mallory") == (10.0, "name")
    now[0] = 31.0
    assert t.wait_left("10.0.0.7", "mallory")[0] == 0.0, "after the wait, one more try"
    t.failed("10.0.0.7", "mallory")
    assert t.wait_left("10.0.0.7", "mallory")[0] == 30.0, "a wrong one right after the wait: another wait"
    t.succeeded("10.0.0.7", "alice")  # a student signing in does not clear the guesser's count
    assert t.wait_left("10.0.0.7", "mallory")[0] == 30.0
    t.failed("10.0.0.7", "eve")  # guessing under other names meets the address's own limit (5)
    assert t.wait_left("10.0.0.7", "someone") == (30.0, "address")
    now[0] = 200.0
    assert t.wait_left("10.0.0.7", "mallory")[0] == 0.0, "wrong passwords older than the window no longer count"
    for _ in range(3):
        t.failed("10.0.0.7", "bob")
    t.succeeded("10.0.0.7", "BOB")
    assert t.wait_left("10.0.0.7", "bob") == (0.0, ""), "a right password starts that name's count again"
