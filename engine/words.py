"""Words for messages the user reads: counts with the right plural, names joined as a sentence, percentages
rounded as the charts round them."""
from __future__ import annotations

import math


def plural(n: int, word: str, many: str = "") -> str:
    """`n` and `word`, with an "s" unless n is 1: plural(1, "epoch") -> "1 epoch", plural(3, "epoch") -> "3 epochs".
    `many` gives another plural form: plural(2, "batch", "batches") -> "2 batches"."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def percent_half_up(x: float) -> str:
    """A fraction as a whole percentage, halves rounded up as the charts' labels round them (d3-format):
    0.125 -> "13%" (Python's format gives "12%", and the per-class chart beside the words showed 13%)."""
    return f"{math.floor(100 * x + 0.5)}%"


def percent(p: float, threshold: float | None = None) -> str:
    """A probability `p` (a fraction) in whole percent, with a decimal where whole percent would read as
    `threshold` itself while `p` is under it ("49.6%", not "50%, under 50%"); the same on the probability
    bars as in the words beside them. Raises nothing."""
    whole = f"{100 * p:.0f}%"
    near = threshold is not None and p < threshold and round(100 * p) >= round(100 * threshold)
    return f"{100 * p:.1f}%" if near else whole


def value_words(value) -> str:
    """A setting's value as people read it: a switch as "on" / "off", a float by `:g` (0.02, not
    "0.020000000000000004"), anything else as str. Raises nothing."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def first_and_more(names, shown: int, sep: str = ", ", more: str = " and {} more") -> str:
    """The first `shown` of `names` (strings) joined by `sep`, then `more` with the count of the rest filled in where
    any are left: first_and_more(["a.png", "b.png", "c.png", "d.png"], 2) -> "a.png, b.png and 2 more";
    first_and_more(files, 3, "; ", "; and {} more") for entries that hold commas themselves. Raises nothing."""
    names = list(names)
    rest = len(names) - shown
    return sep.join(names[:shown]) + (more.format(rest) if rest > 0 else "")


def and_words(names: tuple[str, ...] | list[str]) -> str:
    """Names joined as a sentence says them: "a", "a and b", "a, b and c"; "" for none."""
    names = list(names)
    if not names:
        return ""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ended_early_words(summary: dict) -> str:
    """Why a finished run trained fewer epochs than planned, from summary.json's `ended_early` (set by
    engine.train when a method stopped training, e.g. adversarial fine-tuning's catastrophic-overfitting
    guard rolling the weights back): "Training ended after epoch 3 of 20: catastrophic overfitting: ...".
    "" for a run that trained every planned epoch."""
    early = summary.get("ended_early") or {}
    if not early.get("after_epoch") or not early.get("planned"):
        return ""
    text = f"Training ended after epoch {early['after_epoch']} of {early['planned']}"
    weights = early.get("weights_epoch")
    if early.get("reason"):
        return f"{text}: {early['reason']}."
    kept = f"; the model holds the weights of epoch {weights}" if weights and weights != early["after_epoch"] else ""
    return f"{text} (a method ended it){kept}."


def epochs_ended_early(summary: dict, planned: int) -> int | None:
    """The epochs a run trained when a method ended it before its `planned` ones (summary.json's
    `ended_early`), else None."""
    done = (summary.get("ended_early") or {}).get("after_epoch")
    return done if isinstance(done, int) and 0 < done < planned else None


def epochs_run_words(summary: dict, planned: int) -> str:
    """"3 of 20 epochs" for a run a method ended early (`epochs_ended_early`), else "20 epochs"."""
    done = epochs_ended_early(summary, planned)
    return f"{done} of {plural(planned, 'epoch')}" if done else plural(planned, "epoch")


def extra_epochs_words(config: dict) -> str:
    """The training a run does after its epochs, as the dashboard's run caption, its Ready line and the command line's run header add it
    (`config` as saved: sections -> fields): structured pruning's fine-tuning of the smaller model,
    e.g. " + 10 epochs fine-tuning the smaller model (structured pruning)"; "" when none."""
    pruning = config.get("pruning") or {}
    if pruning.get("enabled") and pruning.get("structured"):
        n = int(pruning.get("structured_epochs") or 0)
        if n:
            return f" + {plural(n, 'epoch')} fine-tuning the smaller model (structured pruning)"
    return ""


BALANCE_WORDS = {"weighted_loss": "loss weighted by class", "balanced_sampling": "classes sampled evenly"}


def balance_words(class_balance: str | None) -> str:
    """`data.class_balance` in a few words for a run's name and descriptions: "loss weighted by class" (each class's
    loss weighted by 1 / its training images), "classes sampled evenly" (batches draw every class equally often),
    "" for "none" (the images as they are) or an unknown value. A student's runs with and without it were named and
    described alike, and Compare's "Every run: ..." read as if they shared every setting."""
    return BALANCE_WORDS.get(class_balance or "none", "")


def difference_words(x: float) -> str:
    """A small non-negative difference (an exported model's largest score difference) in plain decimals, for people
    who do not read "2.6e-06": "none" for 0, "under 0.0001" below it, else 4 decimals ("0.0123")."""
    if x == 0:
        return "none"
    return "under 0.0001" if abs(x) < 1e-4 else f"{x:.4f}"


def fit_words(fit: str | None) -> str:
    """`data.fit` in a few words for a run's name and descriptions: "whole pictures" for "pad" (each picture kept
    whole, padded to a square: engine.data.fit_square), "stretched pictures" for "stretch" (each whole picture
    resized to the square), "" for "crop" (the middle square, the default) or unknown."""
    return {"pad": "whole pictures", "stretch": "stretched pictures"}.get(fit or "", "")


def data_extras(data) -> list[str]:
    """How a run treats its data where that differs from the default, in words (`balance_words`, `fit_words`); the
    run's name, Results' caption, the model card, the next run's lines and `train`'s header say them alike. `data`:
    a DataConfig or a saved config's "data" mapping (a missing key reads as the default)."""
    get = data.get if isinstance(data, dict) else (lambda key: getattr(data, key, None))
    return [w for w in (balance_words(get("class_balance")), fit_words(get("fit"))) if w]


def greyscale_words(greyscale: int, images: int) -> str:
    """A dataset's mix of greyscale and colour pictures (`greyscale` of `images`, engine.data.DataReport.greyscale),
    for the Data page and `inspect`: "34 of 102 pictures are greyscale, the rest colour: Results gives the model's
    accuracy on each kind where the validation or test images have both." "" unless both kinds are there (a
    teacher's third of 16-bit greyscale microscope pictures went unsaid until Results). A geology instructor counted
    20 greyscale files against the 37 said: their colour photos of grey quartz had next to no colour."""
    if not 0 < greyscale < images:
        return ""
    return (f"{greyscale} of {images} pictures are greyscale, the rest colour: Results gives the model's accuracy on "
            "each kind where the validation or test images have both. Greyscale here means next to no colour in the "
            "pixels, so a colour photo of something grey counts as greyscale too.")


def oblong(shape: dict) -> bool:
    """Whether half or more of a dataset's pictures (`shape`: engine.data.picture_shape's dict) are wider or taller
    than square, so that the middle square cuts a tenth or more of the typical one: where keeping whole pictures
    (data.fit "pad" or "stretch") changes what the model sees. False for an unknown shape."""
    shape = shape or {}
    return (float(shape.get("wide") or 0) + float(shape.get("tall") or 0) >= 0.5
            and float(shape.get("square_share") or 1) < 0.9)


SHRINK_SAID = 3  # pictures shrunk this many times or more to the run's size: the detail lost is said


def run_picture_shape(summary: dict) -> dict:
    """A run's training pictures' typical shape (engine.data.picture_shape's dict) from its `summary`'s data report;
    {} for a run from before it was kept."""
    return (summary.get("data_report") or {}).get("picture_shape") or {}


def shrink_factor(shape: dict | None, image_size: int, fit: str = "crop") -> float:
    """How many times the dataset's typical picture (`shape`: engine.data.picture_shape's dict) is shrunk to
    `image_size` px: by its shorter side (`fit` "crop", the middle square) or its longer one ("pad", the whole
    picture; "stretch", whose longer side is squeezed the most); 0.0 where the shape or size is unknown."""
    long, short = int((shape or {}).get("long") or 0), int((shape or {}).get("short") or 0)
    if not long or not short or not image_size:
        return 0.0
    return (long if fit in ("pad", "stretch") else short) / image_size


def shrunk_along(fit: str | None) -> str:
    """" along their longer side" for a stretched run (`fit` "stretch"), whose shorter side is shrunk less (a
    spectrogram's pitch axis not at all), after "shrunk about 4x"; "" for the other ways, which shrink both sides
    alike."""
    return " along their longer side" if fit == "stretch" else ""


def picture_shape_words(shape: dict, image_size: int, control: str = "a larger Image size (Model page)",
                        fit: str = "crop", whole: str = "") -> str:
    """What the model will see of the dataset's pictures (`shape`: engine.data.picture_shape's dict) at `image_size`
    px, for the Data page and `inspect`: that most are wider (taller) than square, or mixed, so the middle square
    keeps a share of their longer side (`fit` "crop"; `whole` names the setting that keeps whole pictures instead,
    "" to leave it unsaid) or the whole picture fills that share of the square, grey bars the rest (`fit` "pad"), or
    is squeezed along its longer side (`fit` "stretch"), and that a picture much larger than the model's input is
    shrunk (by its shorter side, or its longer one when whole), losing fine detail, with `control`, the setting that
    changes it where the words are read ("--image-size" on the command line); "" when neither holds (square pictures
    near the input's size) or the shape is unknown (a report from before it was kept)."""
    long, short = int((shape or {}).get("long") or 0), int((shape or {}).get("short") or 0)
    if not long or not short or not image_size:
        return ""
    keep = float(shape.get("square_share") or 1)
    wide, tall = float(shape.get("wide") or 0) > 0.5, float(shape.get("tall") or 0) > 0.5  # most pictures, one way
    parts = []
    if wide_or_tall := oblong(shape):
        how = ("mostly wider than tall" if wide else "mostly taller than wide" if tall
               else "wider or taller than square, both ways")
        side = "width" if wide else "height" if tall else "longer side"
        ends = "left and right edges" if wide else "top and bottom" if tall else "two ends of the longer side"
        size = f"{long} x {short}" if wide else f"{short} x {long}" if tall else f"{long} by {short}"
        # the other way round: a photographer's 28 portrait photos among 73 landscape ones went unsaid
        other = float(shape.get("tall") or 0) if wide else float(shape.get("wide") or 0) if tall else 0.0
        if fit == "stretch":
            turned = ("" if other < 0.1 else f"; {percent_half_up(other)} of them are "
                      f"{'taller than wide: their height' if wide else 'wider than tall: their width'} is squeezed "
                      "instead")
            parts.append(f"Your pictures are {how} (about {size} px): the model sees each whole, stretched to "
                         f"{image_size} x {image_size} px; its {side} is squeezed about {1 / max(keep, 1e-3):.1f} "
                         f"times more than its {'height' if wide else 'width' if tall else 'shorter side'}{turned}, "
                         f"so shapes look squashed along their {side} (alike for every picture, in training and in "
                         "predictions).")
        elif fit == "pad":
            fills = (f"the square's width and {percent_half_up(keep)} of its height, grey bars above and below" if wide
                     else f"the square's height and {percent_half_up(keep)} of its width, grey bars left and right"
                     if tall else f"the square one way and {percent_half_up(keep)} of it the other, grey bars beside "
                     "the picture's longer sides")
            turned = ("" if other < 0.1 else f" ({percent_half_up(other)} of them are "
                      f"{'taller than wide' if wide else 'wider than tall'}: their bars are "
                      f"{'left and right' if wide else 'above and below'})")
            bars = ("" if other < 0.1 and (wide or tall) else
                    " Where the bars' place differs with a picture's shape, it alone can tell classes of different "
                    "shapes apart (portrait letters, landscape maps), so the model may learn the shape rather than "
                    "what is in the picture: stretching has no bars.")
            parts.append(f"Your pictures are {how} (about {size} px): the model sees each whole, resized to fit "
                         f"{image_size} x {image_size} px; each fills {fills}{turned}.{bars}")
        else:
            lose = ("taller than wide and lose their top and bottom" if wide
                    else "wider than tall and lose their left and right edges")
            turned = "" if other < 0.1 else f"; {percent_half_up(other)} of them are {lose}"
            parts.append(f"Your pictures are {how} (about {size} px): the model sees the middle square of each, "
                         f"{percent_half_up(keep)} of its {side} (the {ends} are cut away{turned}), resized to "
                         f"{image_size} x {image_size} px.")
    shrink = shrink_factor(shape, image_size, fit)
    if shrink >= SHRINK_SAID:
        head = "" if parts else f"Your pictures are about {long} by {short} px. "
        parts.append(f"{head}At {image_size} px they are shrunk about {shrink:.0f}x{shrunk_along(fit)}, so detail "
                     f"finer than about {shrink:.0f} of their pixels is lost; {control} keeps finer detail (not more "
                     "of the picture), and trains slower.")
    if whole and fit == "crop" and wide_or_tall:
        parts.append(f"{whole} keeps the whole picture instead, on grey bars or stretched to the square (the usual "
                     "way for spectrograms and other plots).")
    return " ".join(parts)


def right_of_words(right: int, images: int) -> str:
    """A class's or a group's answers: "50.0% (1 of 2)" (one decimal, as the tiles round), for the model card's and
    Compare's per-class figures alike. Raises ZeroDivisionError for `images` 0."""
    return f"{100 * right / images:.1f}% ({right} of {images})"
