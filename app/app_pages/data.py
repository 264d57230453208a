"""Page 1, Data: choose the images (sample, zip upload, or a server folder), see what the engine
made of them (classes, counts, skipped files, split, a few images per class), optionally add an
out-of-distribution test set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from app import charts, components, datasets, layout, state, vega
from app.widgets import field_widget
from engine.errors import StudioError
from engine.config import ADVANCED_TITLE, with_section
from engine.augment import MIRROR_MEASURED, mirror_changes_meaning
from engine.data import IMAGE_EXTENSIONS, PHASH_MAX_DISTANCE
from engine.paths import SAMPLE_DATASET
from engine.words import SHRINK_SAID, first_and_more, greyscale_words, oblong, picture_shape_words, shrink_factor

KIND_LABELS = {"sample": "Bundled sample", "upload": "Upload a zip", "folder": "Folder on this server"}
SAMPLE_LABEL = state.SAMPLE_LABEL
KIND_KEY = state.WIDGET_PREFIX + "data.kind"
KIND_FOLLOWS = "data_kind_follows"  # set when the dataset in use changed under the radio (a deletion)
AUGMENT_PLACE = f"on the Model and methods page, under '{ADVANCED_TITLE}'"


def _progress_bar():
    """A progress callback (done, total) drawing into a placeholder; returns (callback, placeholder)."""
    slot = st.empty()

    def update(done: int, total: int) -> None:
        slot.progress(done / max(total, 1), text=f"Reading images: {done:,} of {total:,}")

    return update, slot


def _uploaded_ref(engine, upload, suffix: str) -> str | None:
    """Store an upload inside the engine's folder (named by content hash); returns its reference
    `upload:<sha256>`; memoised per file."""
    memo = st.session_state.setdefault("upload_refs", {})
    if upload.file_id not in memo or not state.source_exists(memo[upload.file_id]):  # (a refused one was removed)
        out = state.attempt("saving the upload", state.store_upload, engine, upload.getvalue(), suffix)
        if not out.ok:
            return None
        memo[upload.file_id] = str(out.value)
    return memo[upload.file_id]


def _skipped_table(skipped, expanded: bool = False) -> None:
    """The skipped files and why, folded away unless `expanded`."""
    with st.expander(f"{state.plural(len(skipped), 'skipped file')}, and why",
                     icon=":material/warning:", expanded=expanded):
        st.dataframe([{"file": s.path, "reason": s.reason} for s in skipped], hide_index=True, width="stretch")


def _show_refusal(error: BaseException, name: str = "") -> None:
    """The refusal message (naming the user's file `name` when the message does not), then what the
    engine saw: the layout notes and every skipped file."""
    if name and isinstance(error, StudioError) and name not in str(error):
        st.error(f"**{state.md_text(name)}**: {state.message_md(str(error))}", icon=":material/error:")
    else:
        state.show_error(error, "reading the dataset")
    for note in getattr(error, "notes", []):
        st.caption(note)
    if getattr(error, "skipped", None):
        _skipped_table(error.skipped, expanded=True)


def _activate(engine, candidate: state.Dataset, size: int | None = None) -> bool:
    """Check a new dataset with the engine; use it only when it is trainable. An upload (of `size`
    bytes) that passes is listed among the user's earlier uploads."""
    current = state.dataset()
    trial = with_section(state.config(), "data", source=candidate.source, ood_source="",
                         source_name=candidate.label if candidate.kind == "upload" else "", ood_source_name="")
    update, slot = _progress_bar()
    with st.spinner("Checking the dataset…"):
        result = datasets.check_dataset(engine, trial, update)
    slot.empty()
    if result.ok:
        before = state.config()
        before_images = state.known_classes_and_train_size(before)[1]
        state.set_dataset(_carry_ood(engine, current, candidate, trial, result.report.classes))
        # an OOD zip left in its file chooser would be checked against the new classes on the next rerun: a
        # dropped set came back unasked, or a red refusal stayed under every later dataset
        _bump("ood_upload_n")
        refit = state.refit_preset(before, before_images)
        if refit:
            st.info(refit, icon=":material/tune:")
        if candidate.kind == "upload" and size is not None:
            state.remember_upload(engine, candidate.source, "dataset", candidate.label, size,
                                  classes=len(result.report.classes), images=result.report.num_images)
        return True
    _show_refusal(result.error, candidate.label)
    if candidate.kind == "upload":
        state.discard_refused_upload(engine, candidate.source)
    st.info(f"The studio still uses **{state.md_text(current.label)}**. Fix the problem above, then try again.",
            icon=":material/info:")
    return False


OOD_NOTE = "ood_note"  # (kind, text): what became of the OOD set when the training data changed


OOD_DROPPED = "ood_dropped"  # (source, label, file name) of the OOD set other training data dropped: offered back


def _carry_ood(engine, current: state.Dataset, candidate: state.Dataset, trial, classes: list[str]) -> state.Dataset:
    """`candidate` with the OOD set of `current` kept when it fits the new classes (checked as an upload
    is); otherwise without it, and a note for the OOD section that says why it was dropped. An OOD set
    dropped that way comes back, with a note, when later training data fits it again (a new user went to
    other data and back, and found their OOD set gone)."""
    if candidate.ood_source:
        return candidate
    if current.ood_source:
        (source, label, own), again = (current.ood_source, current.ood_label, current.ood_name), False
    elif st.session_state.get(OOD_DROPPED):
        (source, label, own), again = st.session_state[OOD_DROPPED], True
    else:
        return candidate
    name = own or label
    out = state.attempt("reading the OOD dataset", datasets.check_ood, engine, trial, source, classes, name,
                        show=False)
    if out.ok:
        st.session_state.pop(OOD_DROPPED, None)
        st.session_state[OOD_NOTE] = ("info", f"Your OOD set **{state.md_text(name)}** is "
                                              + ("used again: its class folders match this training data."
                                                 if again else "still used: its class folders match the new "
                                                               "training data."))
        return dataclasses.replace(candidate, ood_source=source, ood_label=label, ood_name=own)
    if not again:  # the engine's message says what does not match and what to do: said once
        st.session_state[OOD_DROPPED] = (source, label, own)
        st.session_state[OOD_NOTE] = ("warning", f"Your OOD set **{state.md_text(name)}** is no longer used with the "
                                                 f"new training data. {state.message_md(str(out.error))} It comes "
                                                 "back by itself if you return to data with its classes.")
    return candidate


def _size_text(n: int) -> str:
    # in 1000s, as Streamlit's uploader writes a file's size (279.9KB there was 273.3 KB here in 1024s)
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(n, 1) / 1e3:.1f} KB"


def earlier_uploads(engine, kind: str, in_use: str, on_use) -> None:
    """This user's earlier uploads of `kind` (dataset or ood), each with Use and Delete buttons."""
    import time

    items = state.uploads(engine, kind)
    note = st.session_state.pop(f"upload_note_{kind}", None)
    if not items:  # the last one deleted: what happened still shows
        if note:
            st.info(note, icon=":material/info:")
        return
    title = "Your earlier uploads" if kind == "dataset" else "Your earlier OOD uploads"
    with st.expander(f"{title} ({len(items)})", icon=":material/history:", expanded=kind == "dataset"):
        for u in items:
            ref = state.upload_ref(u["sha256"])
            # the buttons as wide as their words (fixed columns cut "Delete" to "D..." on a 1024 px projector)
            row = st.container(horizontal=True, vertical_alignment="center")
            c = [row.container(width="stretch"), row.container(width="content"), row.container(width="content")]
            facts = [_size_text(u["size"])]
            if u.get("classes"):
                facts.append(state.plural(int(u["classes"]), "class", "classes"))
            if u.get("images"):
                facts.append(state.plural(int(u["images"]), "image"))
            # the stored time is set again by each store.add_upload: an OOD set's on each use (it read "uploaded"
            # and moved), a dataset's on an upload only (Use keeps a dataset's place in the list: "last used" was wrong)
            when = "last used " if kind == "ood" else "uploaded "
            facts.append(when + time.strftime("%d %b %Y %H:%M", time.localtime(u["created"])))
            c[0].markdown(f"**{state.md_text(u['name'])}** · " + " · ".join(facts) + (" · *in use*" if ref == in_use else ""))
            if u["extracted_only"]:  # said, not silent: a user who moved the zip away may think it gone
                c[0].caption("The zip itself is no longer on the server; the studio reads the images it extracted "
                             "from it.")
            tag = f"{kind}_{u['sha256'][:16]}"
            if st.session_state.get(f"confirm_del_{tag}"):  # a second click deletes: nothing to undo after it
                c[0].caption(state.delete_upload_question(engine, u["sha256"]))
                if c[1].button("Keep", key=f"keep_{tag}"):
                    st.session_state.pop(f"confirm_del_{tag}")
                    st.rerun()
                if c[2].button("Delete", key=f"del_sure_{tag}", type="primary", icon=":material/delete_forever:"):
                    st.session_state.pop(f"confirm_del_{tag}")
                    before = state.dataset().kind
                    message = state.delete_upload(engine, u["sha256"])
                    datasets.forget(ref)
                    st.session_state[f"upload_note_{kind}"] = f"{u['name']}: {message}"
                    if state.dataset().kind != before:  # the dataset in use went with it: the choice above follows
                        st.session_state[KIND_FOLLOWS] = True
                    st.rerun()
                continue
            if c[1].button("Use", key=f"use_{tag}", disabled=ref == in_use):
                on_use(u)
            if c[2].button("Delete", key=f"del_{tag}", icon=":material/delete:"):
                st.session_state[f"confirm_del_{tag}"] = True
                st.rerun()
    if note:
        st.info(note, icon=":material/info:")


def _bump(counter: str) -> None:
    st.session_state[counter] = st.session_state.get(counter, 0) + 1


def choose_source(engine) -> None:
    """The "Where are your images?" choice (the bundled sample, an upload, a folder on the server) and its inputs; a
    new choice becomes the active dataset (kept per user across refreshes). Errors are shown on the page, never
    raised."""
    ds = state.dataset()
    kinds = [k for k in KIND_LABELS if k != "sample" or state.sample_available()]
    if st.session_state.pop(KIND_FOLLOWS, False) and ds.kind in kinds:
        st.session_state[KIND_KEY] = ds.kind
    if st.session_state.get(KIND_KEY) not in kinds:
        st.session_state[KIND_KEY] = ds.kind if ds.kind in kinds else kinds[0]
    kind = st.radio("Where are your images?", kinds, key=KIND_KEY, format_func=KIND_LABELS.get, horizontal=True,
                    help="A zip (or folder) with one sub-folder per class, the images inside: "
                         "cats/001.jpg, cats/002.jpg, dogs/001.jpg …; or train/, val/ (valid/, validation/) "
                         "and test/ folders holding the class folders (the split is then used as given); "
                         "or images with a labels.csv / metadata.csv / metadata.jsonl (file_name, label).")

    note = st.session_state.pop("upload_note_dataset", None)  # a deletion: shown whichever kind is now in use
    if note:
        st.info(note, icon=":material/info:")

    if not state.sample_available() and ds.kind == "sample":
        st.warning(f"The bundled sample dataset ({SAMPLE_DATASET}) is not part of this installation. "
                   "Upload a zip of your own images, or use a folder on this server.", icon=":material/warning:")

    if kind == "sample":
        from tools.textures import TEXTURE_CLASSES

        st.caption(f"{len(TEXTURE_CLASSES)} kinds of texture ({', '.join(TEXTURE_CLASSES)}), drawn by formulas: "
                   "small enough to fine-tune in a minute or two, hard enough that methods make a difference.")
        if ds.kind != "sample":
            _activate(engine, state.Dataset("sample", SAMPLE_DATASET, SAMPLE_LABEL))

    elif kind == "upload":
        formats = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        upload = st.file_uploader(
            "Upload a zip of class folders (or of train/ val/ test/ folders of them, or of images and a labels.csv "
            "naming each one's class)", type=["zip"],
            key=f"upload_zip_{st.session_state.get('upload_n', 0)}",
            help=f"One folder per class, at least 5 images in each (or train/ val/ test/ folders of class "
                 f"folders, or images plus a labels.csv). Image formats: {formats}. "
                 "Files that are not readable images are skipped and listed below.")
        if upload is not None:
            ref = _uploaded_ref(engine, upload, ".zip")
            if ref and ref != ds.source:
                _activate(engine, state.Dataset("upload", ref, upload.name), size=upload.size)
        elif ds.kind == "upload":
            st.caption(f"In use: **{state.md_text(ds.label)}** (kept on the server: no need to upload it again).")

        def use(u: dict) -> None:
            _bump("upload_n")  # empty the file chooser, or the file still in it would be used again next time
            # already listed: its upload date and place in the list stay (no size: not remembered again)
            if _activate(engine, state.Dataset("upload", state.upload_ref(u["sha256"]), u["name"])):
                st.rerun()  # the lines above the list were drawn with the dataset before

        earlier_uploads(engine, "dataset", state.dataset().source, use)  # (the upload above may have changed it)

    else:
        roots = engine.data_roots.roots if engine.data_roots else ()
        example = str(Path(roots[-1]) / "my_images") if roots else "/data/my_images"  # a folder it may read (home last)
        if "folder_path" not in st.session_state and ds.kind == "folder":  # a refresh: the folder in use, as typed
            st.session_state["folder_path"] = ds.label
        folder = st.text_input("Folder on this server", key="folder_path",
                               placeholder=example, help="An absolute path on the machine running the "
                               "studio, holding one sub-folder per class.")
        c1, c2 = st.columns([1, 4])
        # never disabled: the box's text reaches the page when the box loses focus, so a button disabled while it
        # looked empty swallowed the click that took the focus away (a new user clicked twice, then saw it work)
        clicked = c1.button("Use this folder")
        if clicked and not folder.strip():
            st.warning("Type the folder's path in the box above first.", icon=":material/edit:")
        elif clicked:
            allowed = state.attempt("opening the folder", engine.data_roots.resolve, folder.strip())
            if allowed.ok:
                datasets.forget(str(allowed.value))
                _activate(engine, state.Dataset("folder", str(allowed.value), folder.strip()))
        st.caption("Folders this server may read: " + (", ".join(f"`{r}`" for r in roots) or "none")
                   + ". Whoever runs the studio can change this list (STUDIO_DATA_ROOTS, in README's Shared server section).")
        if ds.kind == "folder" and c2.button("Scan the folder again", help="After you added or removed files."):
            datasets.forget(ds.source)


def split_settings() -> None:
    """The "Split and sampling settings" expander: validation and test shares, or, for a dataset whose train/, val/,
    test/ folders give its split, which shares still apply and why."""
    cfg = state.config()
    check = state.last_check(cfg)  # a pre-split dataset's folders give its split: the shares do not apply
    given = check is not None and check.report.split_given
    unused = set()
    if given:
        unused = {"test_fraction"} if check.report.val_carved else {"val_fraction", "test_fraction"}
    with st.expander("Split and sampling settings", icon=":material/call_split:"):
        if given:
            st.caption("Your dataset's folders give its split (train/, val/, test/), and it is used as is: "
                       + ("the validation share below holds out part of train/ for validation, since no validation "
                          "folder was given; the test share does not apply. " if check.report.val_carved else
                          "the validation and test shares do not apply to it. ")
                       + "The seed still sets the training's randomness.")
        else:
            st.caption("Every class is split the same way (stratified), with a fixed seed: the same settings "
                       "always give the same split, so runs are comparable.")
        c = layout.cells(5, key="split")
        d = cfg.data
        names = ("val_fraction", "test_fraction", "min_images_per_class", "train_per_class")  # bounds, help: config
        values = {name: field_widget("data", d, name, container=c[i], disabled=name in unused)
                  for i, name in enumerate(names)}
        b = layout.cells(2)
        values["drop_duplicates"] = field_widget("data", d, "drop_duplicates", container=b[0])
        values["class_balance"] = field_widget("data", d, "class_balance", container=b[1])
        seed = field_widget("run", cfg, "seed", container=c[4])
        state.update_section("data", **values)
        if seed != cfg.seed:
            state.set_config(dataclasses.replace(state.config(), seed=int(seed)))


def dataset_report(engine) -> datasets.DataCheck | None:
    """Check the active dataset (with a progress bar) and show what was found: classes and counts, the split,
    skipped files with reasons, duplicates and near-copies, and a preview. Returns the check, or None when there
    is nothing to check (no sample bundled); a refused dataset is a clear message, not an error."""
    ds, cfg = state.dataset(), state.config()
    if ds.kind == "sample" and not state.sample_available():
        return None  # already explained above: nothing to check
    st.subheader(f"Active dataset: {ds.label}")
    update, slot = _progress_bar()
    with st.spinner("Checking the dataset…"):
        result = datasets.check_dataset(engine, cfg, update)
    slot.empty()
    if not result.ok:
        _show_refusal(result.error)
        st.info("Choose another dataset above, or fix this one and use it again.", icon=":material/info:")
        return result
    rep = result.report
    split, cap = datasets.capped_split(rep.split_counts, cfg.data.train_per_class)
    n_split = {k: sum(v.values()) for k, v in split.items()}
    row = layout.tiles()
    row.metric("Classes", len(rep.classes), width="content")
    row.metric("Images", f"{rep.num_images:,}", width="content")
    row.metric("Training", f"{n_split.get('train', 0):,}", width="content")
    row.metric("Validation / test", f"{n_split.get('val', 0):,} / {n_split.get('test', 0):,}", width="content")
    row.metric("Skipped files", len(rep.skipped), help="Files that are not usable images; the list is below. Hidden "
               "and system files (Thumbs.db, desktop.ini, __MACOSX) are not counted here: a line below says how many "
               "were left out.", width="content")
    few_held_out(split, {"bursts": getattr(rep, "bursts", []), "split_files": rep.split_files})
    st.caption(f"Layout: **{rep.layout}**" + ("" if rep.split_given  # the notes below say which folders give it
                                              else " — each class is split with the seed (see the split settings)."))
    for note in rep.notes:  # the user's file and folder names in them, shown as they are
        st.caption(state.md_text(note))
    fit_section(getattr(rep, "picture_shape", None) or {}, cfg)
    if grey := greyscale_words(getattr(rep, "greyscale", 0), rep.num_images):
        st.caption(f":material/contrast: {grey}")
    for warning in rep.warnings:
        st.warning(warning, icon=":material/warning:")
    imb = rep.imbalance
    if imb.get("imbalanced"):
        st.warning(components.imbalance_words(imb, cfg.data.class_balance), icon=":material/balance:")
    mirror_hint(rep.classes, cfg)
    duplicates_section(rep, result)
    if cap:
        st.caption(f"Training uses at most {state.plural(cfg.data.train_per_class, 'image')} per class (see the split settings): "
                   f"{n_split.get('train', 0):,} of the {cap:,} training images, the rest left out at random "
                   "(seeded). The Training figure, the chart and the table count the ones used.")

    left, right = layout.cells(2)  # the counts, then the pictures: one above the other on a narrow page
    with left:
        vega.altair_chart(charts.class_counts_chart(charts.class_counts_frame(split)), width="stretch")
        counts = {k: split[k] for k in ("train", "val", "test") if k in split}
        table = [{"class": name, **{s: counts[s].get(name, 0) for s in counts},  # with a cap: the images used
                  "total": sum(counts[s].get(name, 0) for s in counts) if cap else rep.counts.get(name, 0)}
                 for name in rep.classes]
        st.dataframe(table, hide_index=True, width="stretch")
    with right:
        st.markdown("**A few training images per class**")
        for name, images in result.grid.items():  # the name on its own line: a narrow column broke long names
            with st.container(gap="small"):
                st.markdown(f"**{state.md_text(name)}**")
                # one strip a class, narrowed with the column: separate pictures wrapped 7 + 1 at 1280 px
                if images:
                    st.image(datasets.thumbnail_strip(images), width="content")
    if rep.skipped:
        _skipped_table(rep.skipped)
    if rep.split_files:
        with st.expander("The files of each split", icon=":material/list:"):
            tabs = st.tabs([f"{name} ({len(files)})" for name, files in rep.split_files.items()])
            for tab, files in zip(tabs, rep.split_files.values()):
                tab.dataframe([{"file": f} for f in files], hide_index=True, width="stretch")
    else:
        st.caption("No file was skipped: every file is a readable image inside a class folder.")
    return result


def few_held_out(split: dict[str, dict[str, int]], report: dict | None = None) -> None:
    """Before any run: when the validation or test split will hold fewer than engine.chance.SMALL_SPLIT images
    (`split`: {split: {class: images}}), what one image will be worth in every accuracy measured on it (Results
    says it again after a run; a new user saw 100% on 9 images and no word of it until then), and the classes
    with few held-out images among larger ones (engine.chance.few_class_words); with the data `report`'s bursts, the
    moments the splits hold (engine.chance.moments_words)."""
    from engine.chance import few_class_words, few_held_out_words

    if small := few_held_out_words(split, report):
        st.info(small, icon=":material/straighten:")
    if few := few_class_words({"data_report": {"split_counts": split}}):  # a rare class among large ones
        st.info(state.md_text(few), icon=":material/straighten:")


def mirror_hint(classes: list[str], cfg) -> None:
    """While training mirrors images and the class names are digits or letters, say that a mirrored
    symbol is another one, with a button that stops the mirroring (and the mirror-image averaging);
    once stopped, one line says so."""
    if not (cfg.train.augment and mirror_changes_meaning(classes)):
        return
    if not cfg.train.flip:
        st.caption("Mirroring is off for these digit or letter classes; training keeps its random crops.")
        return
    shown = ", ".join(f"'{state.md_text(c)}'" for c in classes[:3]) + (", …" if len(classes) > 3 else "")
    st.info(f"**A mirrored digit or letter is another symbol, or none.** Your class names are digits or letters "
            f"({shown}); if the pictures show them, stop the mirroring: training mirrors half its images left to "
            f"right by default. {MIRROR_MEASURED} Both switches ('Mirror images left-right', 'Augment images') are "
            f"{AUGMENT_PLACE}.", icon=":material/flip:")
    st.button("Stop mirroring (keep the random crops)", key="no_flip", icon=":material/build:",
              on_click=state.stop_mirroring,
              help="Switches off 'Mirror images left-right' and 'Average with the mirror image' on the Model and "
                   "methods page.")


SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}  # a report's split keys in words


def duplicates_section(rep, result: datasets.DataCheck) -> None:
    """The duplicate groups: what is done with them, each group's file names and pictures."""
    if not rep.duplicate_groups:
        return
    n_files = sum(len(g) for g in rep.duplicate_groups)
    dropped = len(rep.duplicates_dropped)
    split_of = {f: split for split, files in (rep.split_files or {}).items() for f in files}
    order = list(SPLIT_NAMES).index  # train, then validation, then test
    spans = [sorted({split_of[f] for f in g if f in split_of}, key=lambda s: order(s) if s in SPLIT_NAMES else 3)
             if rep.split_given else [] for g in rep.duplicate_groups]
    across = sum(len(s) > 1 for s in spans)  # groups whose copies lie in more than one of the user's split folders
    leaks = sum(len(s) > 1 and s[0] == "train" for s in spans)  # ... one copy trained on, another held out
    if dropped:
        action = f"{dropped} extra {'copy was' if dropped == 1 else 'copies were'} dropped (*Drop duplicate copies*)."
    elif across:  # the folders place each file: these groups straddle them
        kinds = ([f"{leaks} of these groups {'lies' if leaks == 1 else 'lie'} across train and validation or test, so "
                  "the model can be tested on a picture it trained on"] if leaks else []) + (
            [f"{across - leaks}" + ("" if leaks else f" of these groups {'lies' if across == 1 else 'lie'}")
             + " across validation and test, so a picture counts twice among the held-out ones"] if across > leaks else [])
        action = (f"Your folders give the split, so the copies stay where they are: {'; '.join(kinds)} (marked below). "
                  "Switch on *Drop duplicate copies* to keep one image of each (a training copy first).")
    elif rep.split_given:
        action = ("Your folders give the split, and each group's copies lie in one of its folders, so no picture is "
                  "both trained on and tested on; each copy still counts as an image of its split. Switch on *Drop "
                  "duplicate copies* to keep one image of each.")
    else:
        action = ("Each group is kept in one split, so a copy is never trained on and then tested on; a group "
                  "in validation or test still counts once per copy there. Switch on *Drop duplicate copies* "
                  "to keep one image of each.")
    if across and not dropped:
        st.button("Drop duplicate copies", key="drop_dupes", icon=":material/build:", on_click=state.drop_copies,
                  help="Keeps one image of each group of copies, a training copy first (the switch in the split "
                       "settings above).")
    identical = rep.group_kinds()  # per group ([]: a report from before)
    kinds = datasets.identical_words(identical)
    if not dropped and (alike := datasets.lookalike_caution(identical)):
        action += f" {alike}"
    in_burst = datasets.burst_groups_of(rep)
    frames = (f"; {sum(in_burst)} of them frames of one burst" if sum(in_burst) < len(in_burst) else
              "; frames of one burst each") if any(in_burst) else ""
    with st.expander(f"{state.plural(len(rep.duplicate_groups), 'group')} of "
                     f"duplicate pictures ({n_files} files{kinds}{frames})", icon=":material/content_copy:"):
        st.caption("Identical files, or near-identical pictures: a fingerprint of their shapes (a perceptual hash) "
                   f"that differs in at most {PHASH_MAX_DISTANCE} of its 64 bits, the same colours and close "
                   f"thumbnails. {action}"
                   + (" A group of frames of one burst (shots moments apart, by the times the files record) is "
                      "your repeat shots of one subject: they stay in one split with their burst either way, and "
                      "dropping copies would keep one frame of it." if any(in_burst) else ""))
        for i, (group, pictures) in enumerate(zip(rep.duplicate_groups, result.duplicates)):
            with st.container(gap="small"):  # the pictures, to judge whether they are copies; every name
                where = f", across {' and '.join(SPLIT_NAMES.get(s, s) for s in spans[i])}" if len(spans[i]) > 1 else ""
                what = (" files" if not kinds else " identical files" if identical[i] else " files that look alike")
                what += ", frames of one burst" if in_burst[i] else ""
                st.markdown(f"**Group {i + 1}** ({len(group)}{what}{where}): "
                            + " = ".join(map(state.md_text, group)))
                if pictures:
                    st.image(pictures, width=56)
        rest = rep.duplicate_groups[len(result.duplicates):]
        if rest:
            st.caption(f"The other {len(rest)} groups, by file name:")
            st.dataframe([{"group": len(result.duplicates) + i + 1, "files": " = ".join(g)}
                          for i, g in enumerate(rest)], hide_index=True, width="stretch")


def ood_section(engine, result: datasets.DataCheck | None) -> None:
    """The optional OOD set: upload images of the same classes taken in other conditions; refused with a message
    when its classes differ from the training dataset's `result`."""
    st.subheader("Optional: your own out-of-distribution test set")
    st.markdown("Images of the **same classes** taken in other conditions (another camera, light, place or "
                "season). The studio reports the accuracy on them separately as *OOD accuracy (your OOD set)*, "
                "so you can see whether the model works beyond the conditions it was trained in.")
    ds = state.dataset()
    note = st.session_state.pop(OOD_NOTE, None)
    if note:
        warn = note[0] == "warning"
        (st.warning if warn else st.info)(note[1], icon=":material/warning:" if warn else ":material/info:")
    if result is None or not result.ok:
        st.caption("Choose a valid training dataset first: the OOD set must have the same class folders.")
        return
    if ds.ood_source:
        c1, c2 = st.columns([4, 1])
        c1.success(f"OOD set in use: **{state.md_text(ds.ood_label)}**", icon=":material/check_circle:")
        skipped = st.session_state.get("ood_skipped", {}).get(ds.ood_source)
        if skipped:  # broken images are skipped, as in training data, and named: the accuracy is over the rest
            st.warning(f"{state.plural(len(skipped), 'file')} of your OOD set could not be used and "
                       f"{'is' if len(skipped) == 1 else 'are'} left out of its accuracy: "
                       + first_and_more([f"`{s.path}` ({s.reason})" for s in skipped], 3, ", ",
                                        ", and {} more (the list below)") + ".",
                       icon=":material/warning:")
            _skipped_table(skipped)

        def remove() -> None:
            state.set_dataset(dataclasses.replace(state.dataset(), ood_source="", ood_label="", ood_name=""))
            st.session_state.pop(OOD_DROPPED, None)  # removed by the user: it does not come back by itself
            _bump("ood_upload_n")

        c2.button("Remove it", on_click=remove)
    upload = st.file_uploader("Upload the OOD zip (same class folders)", type=["zip"],
                              key=f"upload_ood_{st.session_state.get('ood_upload_n', 0)}",
                              help=f"Its folders must be named exactly like the training classes: "
                                   f"{', '.join(state.md_text(c) for c in result.report.classes)}.")
    chosen: list[tuple[str, str, int]] = []  # (reference, the user's file name, bytes); the last one wins
    if upload is not None:
        ref = _uploaded_ref(engine, upload, ".zip")
        if ref and ref != ds.ood_source:
            chosen.append((ref, upload.name, upload.size))

    def use(u: dict) -> None:
        _bump("ood_upload_n")  # empty the file chooser, or the file still in it would be used again next time
        chosen.append((state.upload_ref(u["sha256"]), u["name"], u["size"]))

    earlier_uploads(engine, "ood", ds.ood_source, use)
    if not chosen:
        return
    ref, name, size = chosen[-1]
    out = state.attempt("reading the OOD dataset", datasets.check_ood, engine, state.config(), ref,
                        result.report.classes, name)
    if out.ok:
        images, skipped = out.value
        st.session_state.setdefault("ood_skipped", {})[ref] = skipped
        label = f"{name} ({state.plural(images, 'image')}" + (f", {len(skipped)} skipped)" if skipped else ")")
        state.set_dataset(dataclasses.replace(ds, ood_source=ref, ood_name=name, ood_label=label))
        st.session_state.pop(OOD_DROPPED, None)  # another set chosen: the dropped one stays dropped
        state.remember_upload(engine, ref, "ood", name, size, classes=len(result.report.classes), images=images)
        st.rerun()
    else:
        state.discard_refused_upload(engine, ref)
        if ds.ood_source:  # the set in use stays: the refusal changes nothing
            st.info(f"The studio still uses your OOD set **{state.md_text(ds.ood_name or ds.ood_label)}**.",
                    icon=":material/info:")
        else:
            st.info("The run will be evaluated without your OOD set until a matching one is uploaded.",
                    icon=":material/info:")


def render() -> None:
    """Draw the Data page (1): the source, the split settings, the dataset's report, the quick start and the OOD
    set."""
    engine = state.get_engine()
    st.title("1 · Data")
    st.markdown("Bring a few hundred images sorted into one folder per class. The studio checks every file, "
                "splits each class into training, validation and test images, and shows you what it found.")
    choose_source(engine)
    split_settings()
    result = dataset_report(engine)
    if result is not None and result.ok:
        quick_start(engine)
    st.divider()
    ood_section(engine, result)
    st.divider()
    st.page_link("app_pages/model.py", label="Next: choose the model and methods", icon=":material/arrow_forward:")


def quick_start(engine) -> None:
    """One click from the data to a first run, with the settings as they are (the Quick demo preset
    unless the user changed them)."""
    from engine.methods import METHODS
    from engine.optim import setup_extras  # frozen blocks, imbalanced classes: as the Train page and the sidebar

    cfg = state.config()
    methods = ", ".join(METHODS[m].title for m in cfg.enabled_methods() if m in METHODS) or "no extra method"
    problems = state.config_problems(cfg)
    with st.container(border=True):
        components.few_steps_notice(cfg, "data", problems)  # above the button: read before a run starts
        row = layout.button_row()  # the button as wide as its words
        busy = bool(engine.active_runs())
        clicked = row.button("Add to the queue" if busy else "Train now", type="primary", icon=":material/play_arrow:",
                             key="quick_start", disabled=problems is not None)
        row.container(width="stretch").caption(
            ("Queues a run, which starts after the one in progress, " if busy else "Starts a run ")
            + f"with the current settings: {state.backbone_title(cfg.backbone.name)} ({state.weights_words(cfg)}), "
            f"{state.epochs_words(cfg.to_dict())}, {cfg.data.image_size} px, {methods}"
            + setup_extras(cfg) + ". Change them first on *Model and methods* if you like.")
    if clicked:
        out = state.attempt("starting the run", state.start_run, engine)
        if out.ok:
            st.switch_page("app_pages/train.py")


FINER_PX = 128  # the image size the Data page offers where pictures shrink 3x or more (an agronomist's rust
# pustules, about 8 of a 640 x 480 photo's pixels, were lost at 64 px, and only Results said so, after the run)


def fit_section(shape: dict, cfg) -> None:
    """What the model will see of the pictures (engine.words.picture_shape_words: a wide scan's ends cut, detail
    shrunk away; an older report has no shape and says nothing) and, where the pictures are wider or taller than
    square (engine.words.oblong) or whole pictures are already kept, the choice between their middle square and
    the whole picture, on grey bars or stretched (data.fit): a student's 320 x 200 scans lost their ends, and only
    Try it offered another square."""
    oblong_pictures, fit = oblong(shape), cfg.data.fit
    above = st.container()  # the words above the choice, drawn after it: they follow this redraw's choice
    if oblong_pictures or fit != "crop":
        fit = field_widget("data", cfg.data, "fit", widget="radio")
        if fit != cfg.data.fit:  # the check above (counts, previews) was made the other way: made again
            state.update_section("data", fit=fit)
            st.rerun()
    words = picture_shape_words(shape, cfg.data.image_size, fit=fit, whole="*Wide and tall pictures* below")
    if words:
        above.caption(f":material/crop: {words}")
    size = cfg.data.image_size  # shrunk 3x or more, as the words above say: one click to a size keeping finer detail
    if size < FINER_PX and shrink_factor(shape, size, fit) >= SHRINK_SAID:
        above.button(f"Use {FINER_PX} px: finer detail, each epoch about {(FINER_PX / size) ** 2:.0f}x slower",
                     key="finer_px", icon=":material/zoom_in:", on_click=state.use_image_size, args=(FINER_PX,),
                     help="Sets Image size on the Model and methods page (a preset chosen afterwards sets its own).")


render()
