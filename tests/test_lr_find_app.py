"""The Model page: the `optim.lr_auto` switch (drawn from its field metadata) and the range test's
curve and pick of the user's last run that used it."""

from test_app import configure_tiny, engine, new_app, no_problems, start_run, studio, texts, tiny_bytes, upload_zip  # noqa: F401


def test_the_model_page_shows_the_curve_and_pick_of_the_last_auto_lr_run(studio, tiny_bytes):
    at = new_app()
    upload_zip(at, tiny_bytes)
    configure_tiny(at, epochs=2)
    assert not [e.label for e in at.expander if "Learning rate found" in e.label], "no run has used it yet"
    at.toggle(key="w:optim.lr_auto").set_value(True).run()
    no_problems(at)
    assert at.session_state["cfg"].optim.lr_auto
    run_id = start_run(at)
    assert engine().wait(run_id, 300) == "finished", engine().run_record(run_id).error
    at.switch_page("app_pages/model.py").run()
    no_problems(at)
    found = [e for e in at.expander if "Learning rate found" in e.label]
    assert len(found) == 1, [e.label for e in at.expander]
    assert "effective" in found[0].label
    assert any("Learning-rate range test" in str(c.spec) for c in found[0].get("vega_lite_chart")), "the curve is drawn"
    assert any("of the run's steps" in c.value for c in found[0].caption)
