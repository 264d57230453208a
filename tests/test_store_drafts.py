"""The store keeps each user's draft, their uploads and each run's chosen WiSE-FT alpha; configs
name uploads `upload:<sha256>` and the engine finds them in its own uploads folder."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from engine.paths import resolve_path, upload_ref
from engine.errors import StudioError
from engine.store import RunStore
from engine.worker import Engine


def test_drafts_are_kept_per_user_and_the_newest_wins(tmp_path):
    store = RunStore(tmp_path / "s.db")
    assert store.load_draft("ann") is None
    store.save_draft("ann", {"dataset": {"label": "a.zip"}})
    store.save_draft("bob", {"dataset": {"label": "b.zip"}})
    store.save_draft("ann", {"dataset": {"label": "newer.zip"}})
    store.close()
    again = RunStore(tmp_path / "s.db")  # a restart
    assert again.load_draft("ann") == {"dataset": {"label": "newer.zip"}}
    assert again.load_draft("bob") == {"dataset": {"label": "b.zip"}}


def test_each_tab_keeps_its_own_draft_and_a_new_tab_starts_from_the_newest(tmp_path):
    from engine.store import TAB_DRAFT_TTL_S, TAB_DRAFTS_KEPT

    store = RunStore(tmp_path / "s.db")
    store.save_draft("ann", {"dataset": {"label": "a.zip"}}, tab="t1")
    store.save_draft("ann", {"dataset": {"label": "b.zip"}}, tab="t2")
    store.save_draft("bob", {"dataset": {"label": "bob.zip"}}, tab="t1")  # the same token, another user
    store.close()
    again = RunStore(tmp_path / "s.db")  # a restart
    assert again.load_draft("ann", tab="t1") == {"dataset": {"label": "a.zip"}}, "tab 1 gets its own back"
    assert again.load_draft("ann", tab="t2") == {"dataset": {"label": "b.zip"}}
    assert again.load_draft("ann") == {"dataset": {"label": "b.zip"}}, "a new tab: the newest of any tab"
    assert again.load_draft("ann", tab="unknown") == {"dataset": {"label": "b.zip"}}
    assert again.load_draft("bob", tab="t1") == {"dataset": {"label": "bob.zip"}}
    for i in range(TAB_DRAFTS_KEPT + 5):
        again.save_draft("ann", {"n": i}, tab=f"x{i}")
    kept = again._conn.execute("SELECT COUNT(*) FROM tab_drafts WHERE owner='ann'").fetchone()[0]
    assert kept == TAB_DRAFTS_KEPT, "the oldest tabs' drafts go"
    assert again.load_draft("ann", tab="t1") == {"n": TAB_DRAFTS_KEPT + 4}, "a forgotten tab falls back to the newest"
    assert again.load_draft("ann", tab=f"x{TAB_DRAFTS_KEPT + 4}") == {"n": TAB_DRAFTS_KEPT + 4}
    assert again.load_draft("ann", tab="x5") == {"n": 5}
    again._conn.execute("UPDATE tab_drafts SET updated=updated-? WHERE tab='x5'", (TAB_DRAFT_TTL_S + 60,))
    assert again.load_draft("ann", tab="x5") == {"n": TAB_DRAFTS_KEPT + 4}, "an old bookmark: the newest draft"


def test_uploads_are_listed_per_user_newest_first_and_deleted_per_user(tmp_path):
    store = RunStore(tmp_path / "s.db")
    store.add_upload("ann", "a" * 64, "dataset", "digits.zip", 2048, classes=10, images=500)
    store.add_upload("ann", "b" * 64, "ood", "street.zip", 1024, classes=10, images=50)
    store.add_upload("bob", "a" * 64, "dataset", "same bytes.zip", 2048)
    store.add_upload("ann", "a" * 64, "dataset", "digits v2.zip", 2048)  # the same bytes again: one row, new name
    mine = store.list_uploads("ann")
    assert [(u["name"], u["kind"]) for u in mine] == [("digits v2.zip", "dataset"), ("street.zip", "ood")]
    assert mine[0]["classes"] == 10 and mine[0]["images"] == 500 and mine[0]["size"] == 2048, "facts kept"
    assert [u["name"] for u in store.list_uploads("ann", "ood")] == ["street.zip"]
    # asked before a deletion: whether the file would stay for another user (the question said "removed
    # from the server" when it was not)
    assert store.others_have_upload("ann", "a" * 64) and not store.others_have_upload("ann", "b" * 64)
    assert store.delete_upload("ann", "a" * 64) is False, "bob still has those bytes"
    assert not store.others_have_upload("bob", "a" * 64)
    assert store.delete_upload("bob", "a" * 64) is True
    assert [u["name"] for u in store.list_uploads("ann")] == ["street.zip"]


def test_the_chosen_alpha_is_stored_with_the_run_and_older_stores_gain_the_column(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # a store made before the column existed
        conn.executescript("""CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL,
            status TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL, error TEXT,
            run_dir TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '');
            INSERT INTO runs VALUES ('r1', 'old run', '{}', 'finished', 1.0, 1.0, 2.0, NULL, '/x', '');""")
    store = RunStore(db)
    assert store.get_run("r1").wise_ft_alpha is None
    store.set_wise_ft_alpha("r1", 0.3)
    assert store.get_run("r1").wise_ft_alpha == 0.3
    with pytest.raises(ValueError):
        store.set_wise_ft_alpha("r1", 1.5)
    store.set_wise_ft_alpha("r1", None)
    assert store.get_run("r1").wise_ft_alpha is None


def test_an_upload_reference_resolves_in_the_engines_folder_and_says_so_when_gone(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.paths._UPLOAD_DIRS", [])  # engines made by earlier tests registered theirs
    data = b"PK\x05\x06" + b"\0" * 18  # an empty zip
    engine = Engine(tmp_path / "studio")
    try:
        path = engine.save_upload(data, ".zip")
        ref = upload_ref(hashlib.sha256(data).hexdigest())
        assert resolve_path(ref) == path
        path.unlink()
        with pytest.raises(StudioError, match="no longer in this studio's uploads folder"):
            resolve_path(ref)
        with pytest.raises(StudioError, match="not a valid upload reference"):
            resolve_path("upload:../../etc/passwd")
    finally:
        engine.shutdown(5)


def test_an_upload_whose_zip_is_gone_is_read_from_the_studios_extracted_copy(tmp_path, monkeypatch):
    """A new user moved their uploaded zip off the server: the Data page dropped it and its runs' data were "gone",
    though the studio still held its extracted images. They are that zip's files, so a run reads the same images
    and splits from them; only when both are gone is the upload gone."""
    import shutil

    from conftest import write_tiny_zip
    from engine.config import apply_overrides, RunConfig
    from engine.run_data import prepare_data

    from engine.security import DataRoots

    monkeypatch.setattr("engine.paths._UPLOAD_DIRS", [])  # engines made by earlier tests registered theirs
    data = write_tiny_zip(tmp_path / "mine.zip", per_class=6, nested="my data/").read_bytes()
    (tmp_path / "allowed").mkdir()
    engine = Engine(tmp_path / "studio", data_roots=DataRoots(((tmp_path / "allowed").resolve(),)))  # a shared server
    try:
        path = engine.save_upload(data, ".zip")
        ref = upload_ref(hashlib.sha256(data).hexdigest())
        cfg = apply_overrides(RunConfig(), [f"data.source={ref}", "data.image_size=32", "data.source_name=mine.zip"])
        before = prepare_data(cfg, engine.datasets_dir)
        from engine.predict import data_fingerprint

        zip_print = data_fingerprint(cfg)
        path.unlink()
        assert data_fingerprint(cfg) == zip_print, "what was measured from the zip stays in use for its copy"
        assert resolve_path(ref) == engine.datasets_dir / hashlib.sha256(data).hexdigest()[:24]
        after = prepare_data(cfg, engine.datasets_dir)
        for split in ("train", "val", "test"):
            a, b = getattr(before, split), getattr(after, split)
            assert a.labels.tolist() == b.labels.tolist() and a.images.equal(b.images), split
        assert after.classes == before.classes
        engine.check_data_access(cfg)  # the studio's own folder, outside the allowed ones: still the user's upload
        from engine.security import AccessDenied

        typed = apply_overrides(cfg, [f"data.source={resolve_path(ref)}"])  # the same folder typed as a path
        with pytest.raises(AccessDenied):
            engine.check_data_access(typed)
        shutil.rmtree(resolve_path(ref))
        with pytest.raises(StudioError, match="'mine.zip', is no longer in this studio's uploads folder"):
            prepare_data(cfg, engine.datasets_dir)
    finally:
        engine.shutdown(5)


def test_a_new_engine_on_the_same_folder_keeps_drafts_and_uploads(tmp_path):
    first = Engine(tmp_path / "studio")
    first.store.add_upload("", "c" * 64, "dataset", "flowers.zip", 10)
    first.store.save_draft("", {"dataset": {"label": "flowers.zip"}})
    first.shutdown(5)
    second = Engine(tmp_path / "studio")
    try:
        assert [u["name"] for u in second.store.list_uploads("")] == ["flowers.zip"]
        assert second.store.load_draft("") == {"dataset": {"label": "flowers.zip"}}
    finally:
        second.shutdown(5)
