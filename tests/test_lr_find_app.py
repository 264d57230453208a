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
    found = [e for e in at.expander if e.label.startswith("Learning rate")]
    assert len(found) == 1, [e.label for e in at.expander]
    from app.components import read_summary

    pick = read_summary(engine().run_record(run_id).run_dir)["lr_find"]
    if pick["kept"]:  # the tiny run's loss may not fall by 10% in its few steps: then the heading says so
        assert found[0].label.endswith("kept (the range test found none better)"), found[0].label
    else:
        assert found[0].label.startswith("Learning rate found for run") and "effective" in found[0].label
    assert any("Learning-rate range test" in str(c.spec) for c in found[0].get("vega_lite_chart")), "the curve is drawn"
    assert any("of the run's steps" in c.value for c in found[0].caption)
    at.switch_page("app_pages/results.py").run()
    no_problems(at)
    (said,) = [e for e in at.expander if "range test at the start" in e.label and f"{pick['lr']:.3g}" in e.label]
    assert any("Learning-rate range test" in str(c.spec) for c in said.get("vega_lite_chart")), \
        "Results says where the run's learning rate came from, with the test's curve"
