"""The dashboard on a shared server: login, one user's runs hidden from another, data roots, limits."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

import run_app
from conftest import tiny_config, write_tiny_zip
from test_app import MAIN, RUN_TIMEOUT, engine, no_problems, studio, texts  # noqa: F401 (fixture)


@pytest.fixture
def shared(studio, monkeypatch):
    import app.auth as auth

    monkeypatch.setenv("STUDIO_ACCESS", "password")
    monkeypatch.setenv("STUDIO_PASSWORD", "class-2026")
    auth._throttle.clear()  # the server's count of wrong passwords: each test starts without one
    yield studio
    auth._throttle.clear()


def test_a_name_is_refused_not_rewritten_and_its_letter_case_finds_the_same_account(shared):
    """"<b>x</b>" signed in as "bxb" (so two typed names could share an account), and "Alice" opened an empty
    workspace beside alice's."""
    at = login("<b>x</b>")
    assert not at.radio and any(e.startswith("A name may use letters, digits") and "< > /" in e for e in texts(at.error))
    at = login("../../etc")
    assert not at.radio and any("yours has /" in e for e in texts(at.error))
    engine().store.save_draft("alice", {"data": {}})  # what the dashboard keeps of alice's next run: she is known
    at = login("ALICE")
    assert at.radio and at.session_state["auth_user"] == "alice", "the account alice already has"
    engine().store.save_draft("ALICE", {"data": {}})  # two accounts made before names ignored capitals
    assert engine().store.known_owner("alice") == "alice", "an exact name never opens the other, newer account"
    at = login("Zoë Müller")  # letters of any script are kept as typed
    assert at.radio and at.session_state["auth_user"] == "Zoë Müller"
    at = login("Zoe\u0308 Müller")  # the same name typed with a separate accent: the same account
    assert at.radio and at.session_state["auth_user"] == "Zoë Müller"
    for name in ("O'Brien", "O\u2019Brien", "\u0905\u0928\u093f\u0924\u093e", "\u0b95\u0bbe\u0bb5\u0bcd\u0baf\u0bbe"):
        at = login(name)  # an apostrophe; Hindi and Tamil names, whose vowel signs are combining marks
        assert at.radio and at.session_state["auth_user"] == name, (name, texts(at.error))


def test_wrong_passwords_are_throttled_per_name_and_per_computer(shared, monkeypatch):
    import app.auth as auth
    from engine.security import SignInThrottle

    monkeypatch.setattr(auth, "_client", lambda: "10.1.2.3")  # every AppTest tab: one school address
    for _ in range(SignInThrottle().attempts):
        assert any("password is not right" in e for e in texts(login("mallory", "guess").error))
    at = login("Mallory", "class-2026")  # even the right one waits: a guesser learns nothing by trying it
    assert not at.radio and any(e.startswith("Too many wrong passwords for the name Mallory on this computer: try "
                                             "again in ") for e in texts(at.error)), texts(at.error)
    at = login("alice")  # the rest of the class signs in
    assert at.radio and at.session_state["auth_user"] == "alice"
    for i in range(SignInThrottle().address_attempts):  # guessing under ever new names meets the address's limit
        auth._throttle().failed("10.1.2.3", f"guest{i}")  # (as the form records them: 30 more sign-ins cost 30 s)
    at = login("bob")
    assert not at.radio and any(e.startswith("Too many wrong passwords from this computer's network address")
                                for e in texts(at.error)), texts(at.error)


def login(name: str, password: str = "class-2026") -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    no_problems(at)
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click().run()
    no_problems(at)
    return at


def test_nothing_is_shown_before_signing_in_and_a_wrong_password_is_refused(shared):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    no_problems(at)
    assert "Fine-tuning studio" in texts(at.title) and not at.radio  # no page content, only the form
    at = login("alice", "wrong")
    assert any("password is not right" in e for e in texts(at.error))
    at = login("alice")
    assert not at.error and at.radio  # the Data page is drawn


def test_a_refresh_keeps_the_sign_in_until_the_user_signs_out(shared, monkeypatch):
    """A signed cookie keeps a sign-in across a refresh (a new session); a forged one, one signed before
    the password changed, or one the user signed out of, does not."""
    import app.auth as auth

    import time

    from engine.security import login_token

    at = login("alice")
    assert auth.TOKEN_KEY not in at.session_state, "handed to the browser once, on the run after signing in"
    token = login_token("alice", auth.signing_key(), time.time())
    assert token.count(".") == 2 and "alice" not in token, "the name travels encoded, with a signature"
    cookies = {auth.LOGIN_COOKIE: token}
    monkeypatch.setattr(auth, "browser_cookie", lambda name: cookies.get(name))
    again = AppTest.from_file(MAIN, default_timeout=120)  # a refresh: a new session, the browser's cookie
    again.run()
    no_problems(again)
    assert again.session_state[auth.USER_KEY] == "alice" and again.radio, "signed in, the Data page is drawn"
    assert not again.text_input or "Password" not in [t.label for t in again.text_input]

    cookies[auth.LOGIN_COOKIE] = token[:-1] + ("0" if token[-1] != "0" else "1")  # a forged signature
    forged = AppTest.from_file(MAIN, default_timeout=120)
    forged.run()
    assert not forged.radio and "Password" in [t.label for t in forged.text_input], "the login form"

    cookies[auth.LOGIN_COOKIE] = token
    monkeypatch.setenv("STUDIO_PASSWORD", "class-2027")  # a new password ends every kept sign-in
    changed = AppTest.from_file(MAIN, default_timeout=120)
    changed.run()
    assert not changed.radio
    monkeypatch.setenv("STUDIO_PASSWORD", "class-2026")

    again.session_state["try_inputs"] = {"images": [["alice's photo.png", "upload:" + "a" * 64]]}
    out = [b for b in again.sidebar.button if b.label == "Sign out"]
    out[0].click().run()
    no_problems(again)
    assert not again.radio and again.session_state[auth.SIGNED_OUT_KEY], "signed out, although the cookie is sent"
    left = [k for k in ("cfg", "dataset", "focus_run", "try_inputs", "tab_token") if k in again.session_state]
    assert not left, f"the next user to sign in here would inherit {left}"


def test_another_users_run_is_invisible_and_cannot_be_stopped(shared, tmp_path):
    alice, bob = login("alice"), login("bob")
    data = engine().save_upload(write_tiny_zip(tmp_path / "t.zip").read_bytes(), ".zip")
    run_id = engine().submit(tiny_config(data, "train.epochs=30"), owner="alice")
    bob.switch_page("app_pages/results.py").run()
    no_problems(bob)
    assert any("No runs yet" in i for i in texts(bob.info))
    bob.switch_page("app_pages/train.py").run()
    no_problems(bob)
    assert not [b for b in bob.button if b.key == f"stop_{run_id}"]
    bob.session_state["watch"] = run_id  # crafted selections: the pages still refuse to show it
    bob.session_state["results_run"] = run_id
    bob.run()
    no_problems(bob)
    assert not [b for b in bob.button if b.key == f"stop_{run_id}"]
    bob.switch_page("app_pages/results.py").run()
    no_problems(bob)
    assert any("No runs yet" in i for i in texts(bob.info))
    from engine.security import AccessDenied

    with pytest.raises(AccessDenied):
        engine().stop(run_id, "bob")  # the engine checks, not only the page
    alice.switch_page("app_pages/train.py").run()
    no_problems(alice)
    assert engine().stop(run_id, "alice")
    assert engine().wait(run_id, RUN_TIMEOUT) == "stopped"
    alice.switch_page("app_pages/results.py").run()
    assert not any("No runs yet" in i for i in texts(alice.info))


def test_an_owner_keeps_and_shares_a_run_from_results_and_others_only_look(shared, tmp_path):
    """README named pinned (kept from the disk clean-up) and shared runs, but only tests could set them."""
    alice, bob = login("alice"), login("bob")
    data = engine().save_upload(write_tiny_zip(tmp_path / "t.zip").read_bytes(), ".zip")
    run_id = engine().submit(tiny_config(data, "train.epochs=1", "train.batch_size=8"), owner="alice")
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    alice.switch_page("app_pages/results.py").run()
    no_problems(alice)
    alice.toggle(key=f"pinned_{run_id}").set_value(True).run()
    alice.toggle(key=f"shared_{run_id}").set_value(True).run()
    no_problems(alice)
    rec = engine().store.get_run(run_id)
    assert rec.pinned and rec.shared
    assert any(e.label == "Keep or share this run · kept and shared" for e in alice.expander), "seen closed too"
    bob.switch_page("app_pages/results.py").run()
    no_problems(bob)
    assert not any("No runs yet" in i for i in texts(bob.info)), "shared: bob sees it"
    assert bob.toggle(key=f"shared_{run_id}").disabled and bob.toggle(key=f"pinned_{run_id}").disabled
    assert any("Only alice can change this" in c for c in texts(bob.caption))
    alice.toggle(key=f"shared_{run_id}").set_value(False).run()
    assert not engine().store.get_run(run_id).shared
    bob.run()
    no_problems(bob)
    assert any("No runs yet" in i for i in texts(bob.info)), "no longer shared: hidden again"


def test_runs_made_before_sign_in_are_said_and_can_be_given_to_a_name(shared, tmp_path, capsys):
    """A teacher who turned sign-in on found the runs made before it gone: nobody owns them, so nobody saw them."""
    from engine.cli import main as cli

    data = engine().save_upload(write_tiny_zip(tmp_path / "t.zip").read_bytes(), ".zip")
    run_id = engine().submit(tiny_config(data, "train.epochs=1", "train.batch_size=8"), owner="")
    assert engine().wait(run_id, RUN_TIMEOUT) == "finished"
    engine().store.save_draft("Teacher", {"data": {}})  # the account exists in these capitals
    at = login("teacher")
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    assert any("No runs yet" in i for i in texts(at.info))
    assert any(c.startswith("1 run on this studio was made before sign-in was turned on") and
               "python -m engine runs --give-to NAME" in c for c in texts(at.caption)), texts(at.caption)
    data_dir = str(engine().data_dir)
    assert cli(["runs", "--data-dir", data_dir, "--give-to", "<teacher>"]) == 2
    assert "yours has < >" in capsys.readouterr().err
    assert cli(["runs", "--data-dir", data_dir, "--give-to", "teacher"]) == 0
    assert "1 run given to Teacher" in capsys.readouterr().out, "the account in its own capitals"
    assert engine().store.get_run(run_id).owner == "Teacher"
    at.run()
    no_problems(at)
    assert not any("No runs yet" in i for i in texts(at.info)) and not any("before sign-in" in c for c in texts(at.caption))
    assert cli(["runs", "--data-dir", data_dir, "--give-to", "bob", "--run", run_id[-6:]]) == 0
    assert "1 run given to bob" in capsys.readouterr().out and engine().store.get_run(run_id).owner == "bob"
    assert cli(["runs", "--data-dir", data_dir, "--give-to", "bob", "--run", "nope"]) == 2
    assert "No run 'nope'" in capsys.readouterr().err


def _folder_attempt(at: AppTest, path: str) -> list[str]:
    at.radio(key="w:data.kind").set_value("folder").run()
    at.text_input(key="folder_path").input(path).run()
    at.button[0].click().run()
    no_problems(at)
    return texts(at.error)


def test_folders_outside_the_data_roots_and_escaping_links_are_refused(studio, tmp_path, monkeypatch):
    root, secret = tmp_path / "class_data", tmp_path / "secret"
    with zipfile.ZipFile(write_tiny_zip(tmp_path / "t.zip")) as zf:
        zf.extractall(root / "ok")
        zf.extractall(secret)
    os.symlink(secret / "red", root / "ok" / "leak")
    monkeypatch.setenv("STUDIO_DATA_ROOTS", str(root))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    assert any("outside the folders" in e and "`STUDIO_DATA_ROOTS` naming the folders" in e
               for e in _folder_attempt(at, str(secret))), "the way to allow it is said, not only the refusal"
    assert any("links to a place outside" in e for e in _folder_attempt(at, str(root / "ok")))
    os.remove(root / "ok" / "leak")
    assert not _folder_attempt(at, str(root / "ok"))
    assert at.session_state["cfg"].data.source == str((root / "ok").resolve())


def test_a_user_over_the_active_run_limit_gets_a_clear_message(shared, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_MAX_ACTIVE_RUNS_PER_USER", "1")
    at = login("carol")
    data = engine().save_upload(write_tiny_zip(tmp_path / "t.zip").read_bytes(), ".zip")
    first = engine().submit(tiny_config(data, "train.epochs=30"), owner="carol")
    from test_app import configure_tiny, upload_zip

    upload_zip(at, io.BytesIO(data.read_bytes()).getvalue())
    configure_tiny(at)
    at.switch_page("app_pages/train.py").run()
    at.button(key="start").click().run()
    no_problems(at)
    assert any("limit is 1" in e for e in texts(at.error))
    engine().stop(first, "carol")
    engine().wait(first, RUN_TIMEOUT)


def test_run_app_binds_locally_and_refuses_to_expose_without_a_login(monkeypatch):
    monkeypatch.setenv("STUDIO_HOST", "127.0.0.1")  # restored afterwards: main() writes os.environ
    monkeypatch.delenv("STUDIO_ACCESS", raising=False)
    monkeypatch.delenv("STUDIO_PASSWORD", raising=False)
    cmd = run_app.build_command("127.0.0.1", 8501)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert run_app.main(["--host", "0.0.0.0"]) == 2
    env: dict = {}
    assert run_app.configure_access("0.0.0.0", False, env) is not None  # no password: refuse
    env = {"STUDIO_PASSWORD": "x"}
    assert run_app.configure_access("0.0.0.0", False, env) is None and env["STUDIO_ACCESS"] == "password"
    env = {}
    assert run_app.configure_access("0.0.0.0", True, env) is None and env["STUDIO_ACCESS"] == "off"


@pytest.mark.parametrize("flags", [["--server.address", "0.0.0.0"], ["--server.address=0.0.0.0"],
                                   ["--", "--server.address", "0.0.0.0"]])
def test_streamlits_own_address_flag_gets_the_same_login_check(monkeypatch, flags, capsys):
    """`--server.address` is `--host` by Streamlit's name: an exposed address without a login is refused."""
    monkeypatch.setenv("STUDIO_HOST", "127.0.0.1")
    monkeypatch.delenv("STUDIO_ACCESS", raising=False)
    monkeypatch.delenv("STUDIO_PASSWORD", raising=False)
    monkeypatch.setattr(run_app.os, "execv", lambda *a: pytest.fail(f"the server was started: {a}"))
    assert run_app.main(flags) == 2
    assert "Refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_the_printed_address_is_the_port_the_server_listens_on(monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_HOST", "127.0.0.1")
    monkeypatch.delenv("STUDIO_ACCESS", raising=False)
    started = []
    monkeypatch.setattr(run_app.os, "execv", lambda exe, cmd: started.append(cmd))
    monkeypatch.setattr(run_app.os, "chdir", lambda path: None)
    for flags in (["--server.port", "8531"], ["--server.port=8531"], ["--port", "8531"]):
        assert run_app.main([*flags, "--server.headless", "true"]) == 0
        cmd = started.pop()
        assert cmd[cmd.index("--server.port") + 1] == "8531" and cmd.count("--server.port") == 1, cmd
        assert "http://127.0.0.1:8531" in capsys.readouterr().out


def test_each_user_gets_back_their_own_draft_and_uploads(shared, tmp_path):
    alice = login("alice")
    alice.radio(key="w:data.kind").set_value("upload").run()
    alice.file_uploader[0].set_value(("alice data.zip", write_tiny_zip(tmp_path / "a.zip", per_class=6).read_bytes(),
                                      "application/zip")).run()
    no_problems(alice)
    assert alice.session_state["cfg"].data.source_name == "alice data.zip"

    bob = login("bob")  # another user: the defaults, and none of alice's uploads
    assert bob.session_state["dataset"].kind == "sample"
    bob.radio(key="w:data.kind").set_value("upload").run()
    assert not any("alice data.zip" in m for m in texts(bob.markdown))

    again = login("alice")  # alice in a new session (a refresh asks for the password again)
    assert again.session_state["cfg"].data.source_name == "alice data.zip"
    assert "Active dataset: alice data.zip" in texts(again.subheader)


def test_a_studio_used_on_this_computer_alone_reads_folders_in_the_users_home(monkeypatch, tmp_path):
    """A new user's own folder was refused ("outside the folders this server may read (.../assets)") on a
    studio only they could reach; a studio others can reach (a network address, even without sign-in, or an
    unknown host) still reads the assets alone unless told otherwise."""
    from app.state import ASSETS_DIR, default_data_roots
    from engine.errors import StudioError
    from engine.security import AccessDenied, DataRoots

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("STUDIO_DATA_ROOTS", raising=False)
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    local = DataRoots.from_env(default=default_data_roots(False, "127.0.0.1"))
    assert local.resolve(str(tmp_path / "photos")) == (tmp_path / "photos").resolve()
    assert local.resolve("photos") == (tmp_path / "photos").resolve(), "a relative path: tried under every root"
    with pytest.raises(StudioError, match="your whole home folder"):
        local.resolve("~")
    env = {}
    assert run_app.configure_access("0.0.0.0", True, env) is None and env["STUDIO_ACCESS"] == "off"  # --no-auth
    for access, host in ((False, env["STUDIO_HOST"]), (False, None), (False, ""), (True, "127.0.0.1")):
        others = DataRoots.from_env(default=default_data_roots(access, host))
        assert others.roots == (ASSETS_DIR.resolve(),), (access, host)
        with pytest.raises(AccessDenied, match="outside the folders"):
            others.resolve(str(tmp_path / "photos"))
    monkeypatch.setenv("HOME", "/")
    assert default_data_roots(False, "127.0.0.1") == (ASSETS_DIR,), "a home at / would open the whole disk"
