"""Classification scores that stay honest when classes are imbalanced.

Pure functions of (labels, preds), both int64 [N] tensors of class indices (or anything
`torch.as_tensor` accepts), following scikit-learn's definitions so numbers match what users
compute themselves:

- `balanced_accuracy`: mean recall over the classes present in `labels`
  (sklearn.metrics.balanced_accuracy_score, adjusted=False);
- `macro_f1`: unweighted mean F1 over the classes present in `labels` or `preds`, a class with
  no true and no predicted positives scoring 0 (sklearn.metrics.f1_score, average="macro",
  zero_division=0).

`class_errors` gives each class's missed images (recall) and false alarms (precision) from a
confusion matrix.

A model that always answers the large class ("normal") has accuracy = that class's share but
balanced accuracy = 1 / number of classes, and a low macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _confusion(labels, preds, num_classes: int | None) -> torch.Tensor:
    y = torch.as_tensor(labels, dtype=torch.int64).flatten().cpu()
    p = torch.as_tensor(preds, dtype=torch.int64).flatten().cpu()
    if y.shape != p.shape:
        raise ValueError(f"labels and preds must have the same length (got {len(y)} and {len(p)})")
    if num_classes is None:
        num_classes = int(max(int(y.max()) if len(y) else -1, int(p.max()) if len(p) else -1)) + 1
    return torch.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def balanced_accuracy(labels, preds, num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes that occur in `labels` (0..1); nan for no labels."""
    cm = _confusion(labels, preds, num_classes).double()
    support = cm.sum(1)
    present = support > 0
    if not bool(present.any()):
        return float("nan")
    return float((cm.diagonal()[present] / support[present]).mean())


def macro_f1(labels, preds, num_classes: int | None = None) -> float:
    """Unweighted mean F1 over classes that occur in `labels` or `preds` (0..1); nan for no labels."""
    cm = _confusion(labels, preds, num_classes).double()
    tp = cm.diagonal()
    support, predicted = cm.sum(1), cm.sum(0)
    used = (support + predicted) > 0
    if not bool(used.any()):
        return float("nan")
    f1 = 2 * tp[used] / (support[used] + predicted[used])  # = 2PR/(P+R); 0 when tp = 0
    return float(f1.mean())


def imbalance_scores(labels, preds, num_classes: int | None = None) -> dict[str, float]:
    """{"balanced_acc", "macro_f1"}: the two scores to show beside accuracy on imbalanced data."""
    return {"balanced_acc": balanced_accuracy(labels, preds, num_classes),
            "macro_f1": macro_f1(labels, preds, num_classes)}


def selection_key(epoch: dict) -> tuple[float, float]:
    """How the best epoch is chosen from one epoch's metrics (`val_acc`, `val_loss`): the highest
    validation accuracy, ties broken by the lower validation loss (on a few validation images several
    epochs tie, and the earliest was often the first head-only one); still tied, the earliest. Used by
    the training loop (best.safetensors) and everything that names the best epoch. An epoch without a validation
    accuracy (no validation images: NaN in the loop, None once saved) ranks below every measured one, as the loop
    ranks it: `predict` on such a run stopped with a TypeError."""
    acc, loss = epoch.get("val_acc"), epoch.get("val_loss")
    acc = float("nan") if acc is None else float(acc)  # a numpy or 0-d tensor value too
    acc = acc if acc == acc else float("-inf")
    return acc, -(float(loss) if isinstance(loss, (int, float)) and loss == loss else float("inf"))


TIE = 1e-6  # accuracies (fractions) closer than this are the same count of right images: float rounding apart


def same_figure(a: float | None, b: float | None) -> bool:
    """Whether two accuracies (fractions) are the same figure: both None, or within TIE of each other. The same
    count of right images that float rounding set apart (a WiSE-FT curve's 0.675000011920929 at alpha 0.95 against
    0.6750000069538752 at alpha 1, means of float32 accuracies; exact fractions summed in another order differ in
    their last bit) compares equal, so a tie goes where the tie rule sends it (a new user's run picked alpha 0.95,
    level with the fine-tuned end on every figure and 5 test points below it)."""
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= TIE


def top_point(points: list[dict], value) -> dict | None:
    """The point of `points` (dicts with an "alpha") with the highest `value(point)` (a float), points within TIE
    of it (`same_figure`) tied, and a tie going to the largest alpha, the mix nearest the fine-tuned model: the run's
    pick (engine.predict.chosen_alpha), the claim line and the Results panel name one alpha for one figure. None
    for no points."""
    if not points:
        return None
    best = max(value(p) for p in points)
    return max((p for p in points if same_figure(value(p), best)), key=lambda p: p["alpha"])


@dataclass(frozen=True)
class ClassErrors:
    """One class's two kinds of error, from a confusion matrix (image counts). `images`: the class's true images;
    `found`: those the model answered as the class (recall's numerator); `missed_as`: what the rest were taken for,
    [(class, images)], most first; `answered`: the model's answers of the class; `false_from`: the true classes of
    its wrong answers of the class (false alarms), [(class, images)], most first."""

    name: str
    images: int
    found: int
    missed_as: list[tuple[str, int]]
    answered: int
    false_from: list[tuple[str, int]]

    @property
    def recall(self) -> float | None:
        """found / images (a fraction), the share of the class's images the model found; None without images."""
        return self.found / self.images if self.images else None

    @property
    def precision(self) -> float | None:
        """found / answered (a fraction), the share of the model's answers of the class that were right; None when
        it never answered the class."""
        return self.found / self.answered if self.answered else None


def class_errors(rows: list[list[int]], classes: list[str]) -> list[ClassErrors]:
    """Each class's missed images and false alarms (`ClassErrors`, in `classes` order) from a confusion matrix
    `rows` (rows: true class, columns: the model's answer; image counts, as sklearn.metrics.confusion_matrix lays
    it out). Recall and precision follow sklearn.metrics.recall_score and precision_score per class. Raises
    ValueError when `rows` is not square with one row per class."""
    k = len(classes)
    if len(rows) != k or any(len(r) != k for r in rows):
        raise ValueError(f"a confusion matrix of {len(classes)} classes needs {k} rows of {k} counts")

    def most_first(pairs):
        return sorted(((classes[j], int(n)) for j, n in pairs if n), key=lambda p: -p[1])

    return [ClassErrors(name=c, images=int(sum(rows[i])), found=int(rows[i][i]),
                        missed_as=most_first((j, rows[i][j]) for j in range(k) if j != i),
                        answered=int(sum(r[i] for r in rows)),
                        false_from=most_first((j, rows[j][i]) for j in range(k) if j != i))
            for i, c in enumerate(classes)]
