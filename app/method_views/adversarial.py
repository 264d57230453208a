"""Adversarial fine-tuning on the Results page: images, their adversarial versions, the perturbation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from app import state
from app.method_views import points_delta, register_view


def to_rgb(t) -> np.ndarray:
    """A float [3,H,W] tensor in [0,1] as an HxWx3 uint8 array for st.image."""
    return (t.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


@st.cache_data(show_spinner=False, max_entries=8)
def _strip(run_dir: str, datasets_dir: str, n: int, eps: float, steps: int, stamp=None) -> dict:
    """The adversarial strip of the run's first `n` validation images (engine.attacks.adversarial_strip); `stamp`
    (engine.runs.summary_stamp) keys it to the run's current model."""
    from engine.attacks import adversarial_strip
    from engine.runs import load_run

    b = load_run(Path(run_dir), Path(datasets_dir))
    with b.lock:
        out = adversarial_strip(b.model, b.data.val.images[:n], b.data.val.labels[:n], eps, steps, b.cfg.seed)
    out = {k: v.detach() for k, v in out.items()}
    out["labels"] = b.data.val.labels[:n]
    out["classes"] = list(b.classes)
    return out


@register_view("adversarial")
def adversarial_view(engine, rec, summary: dict) -> None:
    """Adversarial fine-tuning's view on Results: robust accuracy against clean, the attack, the overfitting guard's
    rollback when it happened, and a few validation images beside their attacked copies."""
    ev = summary.get("robust_eval") or {}
    eps = float(ev.get("eps") or rec.config.get("eval", {}).get("robust_eps") or 4 / 255)
    # clean accuracy on the images attacked: the test split, or validation for data without one
    clean = summary.get("test_acc") if isinstance(summary.get("test_acc"), (int, float)) else summary.get("val_acc")
    if summary.get("robust_acc") is not None and isinstance(clean, (int, float)):
        split = "validation" if ev.get("split") == "val" else "test"  # data without a test split: validation's
        st.metric(f"Robust {split} accuracy ({ev.get('attack', 'PGD')}, eps {eps * 255:.1f}/255)",
                  f"{100 * summary['robust_acc']:.1f}%",
                  **points_delta(summary["robust_acc"], clean, "clean"))
        trained = summary.get("adversarial") or {}
        if isinstance(trained.get("eps"), (int, float)) and eps > trained["eps"] + 1e-9:  # a teacher asked why
            st.caption(f"Training changed its images by at most {255 * trained['eps']:.1f}/255 (eps); this check "
                       f"changes them by up to {eps * 255:.1f}/255 ({ev.get('attack', 'PGD')}): robustness is checked "
                       "beyond what the model trained against, so the figure errs on the low side.")
    if summary.get("catastrophic_overfitting"):
        co = summary["catastrophic_overfitting"]
        st.warning(f"Catastrophic overfitting was caught at epoch {co['epoch']}: accuracy under a 10-step attack on "
                   f"training images fell to {100 * co['train_pgd_acc']:.0f}% (best {100 * co['best_train_pgd_acc']:.0f}%). "
                   f"The model was rolled back to epoch {co['rolled_back_to_epoch']}.")
    st.caption("Validation images (top), their adversarial versions (middle: each pixel moved by at most eps toward "
               "a wrong answer) and the change itself, amplified so you can see it (bottom: grey = unchanged).")
    n = 6
    with st.spinner("Attacking a few validation images ..."):
        from engine.runs import summary_stamp

        s = _strip(str(rec.run_dir), str(engine.datasets_dir), n, eps, 20, summary_stamp(Path(rec.run_dir)))
    classes = s["classes"]
    shown = range(min(n, len(s["labels"])))
    names = [(state.md_text(classes[int(s["labels"][i])]), state.md_text(classes[int(s["pred"][i])]),
              state.md_text(classes[int(s["pred_adv"][i])])) for i in shown]
    rows = (  # one row of columns each (not one column of three): a caption that wraps shifts no other row
        [(to_rgb(s["clean"][i]), f"{p} ({100 * float(s['conf'][i]):.0f}%) · true {truth}")
         for i, (truth, p, _) in zip(shown, names)],
        [(to_rgb(s["adversarial"][i]), f"{'✓' if pa == truth else '✗'} {pa} ({100 * float(s['conf_adv'][i]):.0f}%)")
         for i, (truth, _, pa) in zip(shown, names)],
        [(to_rgb(s["perturbation"][i]), f"max change {255 * float(s['linf'][i]):.1f}/255") for i in shown],
    )
    for row in rows:
        for col, (picture, caption) in zip(st.columns(n), row):
            col.image(picture, caption=caption, width="stretch")
