"""The "Model card" tab: a reader's version of the shipped card, the full card, and its figures as Gradio images.

``MODEL_CARD.md`` is written for whoever trains the next model (a 19-row recipe table, every
study); a student needs the headline figures, what the flags mean and where the model fails.
The full card has one renderer, training's (``training/card.py`` writes MODEL_CARD.md from the JSON
card): the tab shows that file as it was rendered (``full_markdown`` only takes out its figure links),
never a second rendering of it. ``reader_markdown`` is the student's summary above it, read from the
typed card. Figures come from the one list, ``model.card.FIGURES``, and are shown through Gradio
components, never as Markdown links: the server refuses paths outside its cache, so linked images were
broken.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from model.card import FIGURES, ModelCard, SplitMetrics
from model.labels import CLASSES, MALIGNANT, display_name

__all__ = ["FIGURES", "figures", "full_markdown", "map_trust", "reader_markdown"]


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _ci(metrics: SplitMetrics, key: str) -> str:
    low, high = metrics.interval(key) or (None, None)
    return "" if low is None else f"{low:.3f}-{high:.3f}"


def reader_markdown(card: ModelCard | Mapping) -> str:
    """The card in a student's terms: what the model is, how well it does, when not to trust it."""
    if not card:
        return "No model card found."
    card = ModelCard.from_json(card)
    test, val = card.metrics["test"], card.metrics["val"]
    data = card.data
    point = card.operating_point
    height, width = (card.input_size.height, card.input_size.width) if card.input_size else ("?", "?")
    version = card.version if "version" in card else "?"
    lines = [
        f"## Model card: {card.name} ({version})",
        "**Not a medical device.** A research and teaching model; it gives no diagnosis.",
        f"A MobileNetV2 (ImageNet weights, fine-tuned) that reads a dermatoscopic image resized to "
        f"{height}x{width} px and gives the probability of 7 diagnoses. "
        f"Trained on HAM10000 ({sum(data.images.values()):,} images of {sum(data.lesions.values()):,} "
        "lesions), split by lesion so that no lesion is in two splits: every choice was made on the "
        f"validation split, and the test split ({data.images['test']:,} images of "
        f"{data.lesions['test']:,} lesions) was scored once, at the end.",
        "### How well it does",
        "| measure | test | 95% interval | validation |",
        "|---|---|---|---|",
        f"| balanced accuracy (mean recall over the 7 classes) | {test.balanced_accuracy:.3f} | "
        f"{_ci(test, 'balanced_accuracy')} | {val.balanced_accuracy:.3f} |",
        f"| accuracy | {test.accuracy:.3f} | {_ci(test, 'accuracy')} | {val.accuracy:.3f} |",
        f"| melanoma recall | {test.per_class['mel'].recall:.3f} | {_ci(test, 'melanoma_recall')} | "
        f"{val.per_class['mel'].recall:.3f} |",
    ]
    if point.measured:
        lines += [
            f"| malignant flag: sensitivity | {point.test_sensitivity:.3f} | "
            f"{_ci(test, 'malignant_sensitivity')} | {point.val_sensitivity:.3f} |",
            f"| malignant flag: specificity | {point.test_specificity:.3f} | "
            f"{_ci(test, 'malignant_specificity')} | {point.val_specificity:.3f} |",
        ]
    lines += ["Intervals: 95% bootstrap over the test split's lesions. Published models reach 0.80+ "
              "balanced accuracy with ensembles and more data; this one is well short of that.",
              "### Per class (test split)",
              "| class | counted as | recall | precision | images |", "|---|---|---|---|---|"]
    for c in CLASSES:
        row = test.per_class[c]
        kind = "malignant" if c in MALIGNANT else "benign"
        lines.append(f"| {display_name(c)} | {kind} | {row.recall:.2f} | {row.precision:.2f} | {row.support} |")
    lines.append("### What the page's flags mean")
    if point.measured:
        chosen = point.chosen_on or "chosen on the validation split"
        lines.append(f"- **Suspicious**: the malignant classes together reach {_pct(point.threshold)}. The "
                     f"threshold was {chosen} (few malignant lesions missed), so many flagged lesions are benign: "
                     f"on the test split it caught {_pct(point.test_sensitivity)} of malignant lesions and "
                     f"cleared {_pct(point.test_specificity)} of benign ones.")
    uncertainty = card.uncertainty
    if uncertainty.test:
        u = uncertainty.test
        lines.append(f"- **Uncertain**: no class reaches {_pct(uncertainty.threshold)}. "
                     f"{_pct(u.uncertain_share)} of test images; the model was right on "
                     f"{_pct(u.accuracy_uncertain)} of those and {_pct(u.accuracy_confident)} of the others.")
    ood = card.not_dermoscopic
    if ood.test_dermoscopic_flagged is not None:
        lines.append(f"- **May not be a dermoscopic image**: the picture is unlike the training images. It "
                     f"caught {_pct(ood.non_dermoscopic_flagged)} of {ood.non_dermoscopic_images} "
                     "non-dermoscopic pictures, and wrongly flags "
                     f"{_pct(ood.test_dermoscopic_flagged)} of real test images.")
    explanations = card.section("explanations").get("test", {})  # a research section, read at the edge
    if "Grad-CAM" in explanations and "centre prior" in explanations:
        cam, lime, centre = explanations["Grad-CAM"], explanations.get("LIME", {}), explanations["centre prior"]
        lines += ["### How far the heatmaps can be trusted",
                  f"On {explanations.get('images', 'some')} test images, Grad-CAM put "
                  f"{_pct(cam['energy_in_box'])} of its weight inside the lesion's box"
                  + (f" and LIME {_pct(lime['energy_in_box'])}" if lime else "")
                  + f", against {_pct(centre['energy_in_box'])} for a blob in the image's centre that ignores "
                  "the model. Lesions sit near the centre, so read either map as roughly where the model "
                  "looked, not as proof of why it answered."]
        served = card.section("sanity_checks").get("served", {})
        lines += [f"**{name}.** {text}" for name in ("Grad-CAM", "LIME")
                  if (text := map_trust(card, name, served.get("Grad-CAM")))]
    rare = sorted(test.per_class[c].support for c in CLASSES)
    lines += ["### Limitations",
              "- One public data set (HAM10000), mostly fair skin, from two clinics; other dermatoscopes, "
              "skin types and cameras change the answers (the full card measures vignettes and colour casts).",
              f"- The rarest classes have {rare[0]} to {rare[2]} test images each, so their figures are "
              "uncertain.",
              "- The full card, with every training run tried and every study, is `model/shipped/MODEL_CARD.md` "
              "in the repository (and below); the research record is `docs/experiments.md`."]
    return "\n\n".join(lines).replace("\n\n|", "\n|")


def _versus(row: dict, baseline: str) -> tuple[str, str]:
    """How a map's test ROAD compares with a baseline's on the same images: a verb phrase, and the figures."""
    d = row[baseline]["road"]
    low, high = d["ci95"]
    phrase = "better than" if low > 0 else "worse than" if high < 0 else "no better than"
    return phrase, f"{d['difference']:+.3f}, 95% interval {low:+.3f} to {high:+.3f}"


def _sanity_clause(checks: dict, row: dict) -> str:
    """What the sanity checks found for one map, in words, with the figure each verdict rests on."""
    stages = [s for s in checks["stages"] if s in row]
    least = max(stages, key=lambda s: row[s]["spearman"])  # where the map changed least
    where = "its head" if least == "logits" else f"everything from its head down to {least}"
    if row["verdict"]["model_randomisation"]:
        text = (f"it changed when the model's weights were scrambled block by block (rank correlation with the "
                f"trained map at most {row[least]['spearman']:.2f})")
    else:
        text = (f"it stayed much the same when {where} was scrambled (rank correlation {row[least]['spearman']:.2f} "
                "with the trained map), so part of it shows the picture rather than the model's reasons")
    shuffled = row["labels shuffled"]["spearman"]
    return text + (f" and when the model was fitted to shuffled labels ({shuffled:.2f})"
                   if row["verdict"]["label_randomisation"]
                   else f", and it stayed alike when the model was fitted to shuffled labels ({shuffled:.2f})")


def map_trust(card: Mapping, map_name: str, method: str | None = None) -> str:
    """One sentence for a map's caption: how far the card's sanity checks and ROAD showed it can be trusted.

    ``map_name``: "Grad-CAM" (``method``: the served candidate) or "LIME"; empty when the card measured neither.
    """
    card = ModelCard.from_json(card)
    checks = card.section("sanity_checks")  # research sections, read at the edge
    if map_name == "LIME":  # the segmentation the sanity checks measured is the served one (a test checks)
        key, test = "LIME", card.segmentations.test if card.segmentations else {}
        road = test.get("faithfulness", {}).get(checks.get("served", {}).get("LIME"))
    else:
        key, test = method, card.cam_methods.test if card.cam_methods else {}
        road = test.get(method)
    clauses = []
    if isinstance(checks.get(key), dict):
        clauses.append(_sanity_clause(checks, checks[key]))
    if road and "minus_random" in road:
        (random, by_random), (prior, by_prior) = _versus(road, "minus_random"), _versus(road, "minus_centre_prior")
        clauses.append(f"by ROAD (its most and least important pixels removed and filled in from their neighbours), "
                       f"on {test['images']} test images it picked the model's evidence {random} a random map "
                       f"({by_random}) and {prior} a blob in the middle of the picture ({by_prior})")
    return f"How far it held up (model card): {'; '.join(clauses)}." if clauses else ""


def full_markdown(text: str) -> str:
    """MODEL_CARD.md without its figure links (shown as images instead) and with no accidental lists.

    A wrapped line that starts with a number and a full stop ("1009. No lesion") renders as an
    ordered list; where it continues a line that is not itself numbered, it is escaped.
    """
    names = "|".join(re.escape(figure.file) for figure in FIGURES)
    kept = []
    for line in text.splitlines():
        if re.search(rf"\]\(({names})\)", line):
            continue
        continues = kept and kept[-1].strip() and not re.match(r"\s*\d+\. ", kept[-1])
        if re.match(r"\s*\d+\. ", line) and continues:
            line = re.sub(r"^(\s*\d+)\. ", r"\1\\. ", line)
        kept.append(line)
    return "\n".join(kept)


def figures(export_dir: Path) -> list[tuple[Path, str]]:
    """The card's figures that exist beside the model, with their captions."""
    return [(export_dir / f.file, f.caption) for f in FIGURES if (export_dir / f.file).is_file()]
