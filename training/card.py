"""The model card in Markdown, rendered from the JSON card so the two never disagree."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from model.card import FIGURES, RUN_FIGURES, not_dermoscopic_section, update_sections, write_json
from model.flags import INPUT_SCORES
from model.labels import CLASSES, NAMES

from .config import EPOCH_PREFIX, recipe_phrases
from .data import EXTRA_SOURCES
from .selection.rule import judged, per_set

# the explanation-quality table's columns (training/explanations.py measures them)
EXPLANATION_METRICS = ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc")
MINUS_BASELINE = "minus_centre_prior"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _probe_verdict(probe: dict, card: dict) -> str:
    """Sentences from the probe's numbers: does any colour preprocessing beat none? Did fine-tuning with it?"""
    none = probe["none"]["balanced_accuracy"]
    best = max(probe, key=lambda name: probe[name]["balanced_accuracy"])
    gain = probe[best]["balanced_accuracy"] - none
    if best == "none" or gain < 0.01:
        text = f"No colour preprocessing beats none by 0.01 or more (best: {best}, {gain:+.3f})"
    else:
        text = f"{best} beats no preprocessing by {gain:+.3f} balanced accuracy on this probe"
    rows = card.get("ablation", [])
    tuned = next((r for r in rows[1:] if r.get("differs") == {"colour": best}), None)
    if tuned:  # the probe scores frozen features; the recipe table has the whole network fine-tuned with it
        text += (f"; fine-tuned whole with it, a run reached {tuned['val_balanced_accuracy']:.3f} validation "
                 f"balanced accuracy against this model's {rows[0]['val_balanced_accuracy']:.3f} (recipe table)")
    colour = card["training"]["config"].get("colour", "none")
    return text + (". The shipped model takes the RGB image as it is." if colour == "none"
                   else f". The shipped model's first layer: {colour}.")


def _interval(metrics: dict, name: str, digits: str = ".3f") -> str | None:
    """A figure's 95% interval as "low-high"; None for a card measured before intervals."""
    ci = metrics.get("ci95", {}).get(name)
    return None if ci is None else f"{ci[0]:{digits}}-{ci[1]:{digits}}"


def _ci_text(metrics: dict, name: str) -> str:
    interval = _interval(metrics, name, ".1%")
    return f", 95% interval {interval}" if interval else ""


def _results_table(test: dict, val: dict) -> str:
    """The headline figures on test (with intervals) and validation."""
    rows = (
        ("balanced accuracy (mean recall)", "balanced_accuracy", test["balanced_accuracy"], val["balanced_accuracy"]),
        ("accuracy", "accuracy", test["accuracy"], val["accuracy"]),
        ("macro one-vs-rest ROC AUC", "macro_auc", test["macro_auc"], val["macro_auc"]),
        ("melanoma recall", "melanoma_recall", test["per_class"]["mel"]["recall"], val["per_class"]["mel"]["recall"]),
        ("malignant (mel+bcc+akiec) vs benign ROC AUC", "malignant_auc", test["malignant_auc"], val["malignant_auc"]),
        ("expected calibration error (15 bins, calibrated)", "ece", test["ece"], val["ece"]),
    )
    lines = [f"| {label} | {t:.3f} | {_interval(test, key) or 'n/a'} | {v:.3f} | {_interval(val, key) or 'n/a'} |"
             for label, key, t, v in rows]
    method = test.get("ci95", {}).get("method")
    note = f"\n\nIntervals: {method}." if method else ""
    return ("| metric | test | test 95% interval | validation | validation 95% interval |\n|---|---|---|---|---|\n"
            + "\n".join(lines) + note)


def soup_members(soup: str) -> str:
    """A soup's members for the recipe table: one run's epoch files read as that run's epoch range."""
    epochs = [re.fullmatch(rf"(.+):{re.escape(EPOCH_PREFIX)}(\d+)", m) for m in soup.split("+")]
    if all(epochs) and len({e[1] for e in epochs}) == 1:
        numbers = sorted(int(e[2]) for e in epochs)
        if numbers == list(range(numbers[0], numbers[-1] + 1)):
            return f"{epochs[0][1]} epochs {numbers[0]}-{numbers[-1]}"
    return soup


def changed(i: int, row: dict) -> str:
    """What a recipe-table row's run did differently; nothing, below the first row, means a repeat."""
    text = ", ".join(f"{k}={soup_members(v) if k == 'soup' and v else v}" for k, v in row["differs"].items())
    return text or ("(this run)" if i == 0 else "(same recipe, run again)")


def _explanations_section(card: dict) -> str:
    """How far Grad-CAM and LIME can be trusted (training/explanations.py); empty if not measured."""
    measured = card.get("explanations")
    if not measured:
        return ""
    test, val = measured["test"], measured["val"]
    metrics = EXPLANATION_METRICS
    methods = [m for m, row in test.items() if isinstance(row, dict) and "pointing_hit" in row]
    compared = [m for m in methods if MINUS_BASELINE in test[m]]

    def cell(split: dict, method: str, metric: str) -> str:
        return f"{split[method][metric]:.2f} ({_interval(split[method], metric, '.2f')})"

    rows = "\n".join(
        f"| {method} | " + " | ".join(cell(test, method, m) for m in metrics) + " | "
        + " / ".join(f"{val[method][m]:.2f}" for m in metrics) + " |"
        for method in methods
    )

    def paired(method: str, metric: str) -> str:
        d = test[method][MINUS_BASELINE][metric]
        return f"{d['difference']:+.2f} ({d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f})"

    paired_rows = "\n".join(f"| {method} | " + " | ".join(paired(method, m) for m in metrics) + " |"
                             for method in compared)
    return f"""
## How far the explanations can be trusted
The app's Grad-CAM and LIME (top class, as served) on {test['images']} test and {val['images']} validation
images ({measured['sample']}), beside two maps that ignore the model: a Gaussian at the image
centre and random noise. Localisation against the lesion's bounding box (`lesion_boxes.csv`):
the pointing game (is the map's peak in the box?) and the share of the map's positive mass in the
box (the box covers {test['box_area']:.0%} of a test image on average). Faithfulness: the
probability of the explained class as the map's top pixels are blurred away (deletion area: lower
is better) or put back into a blurred copy (insertion area: higher is better), a tenth at a time.
Mean (95% bootstrap interval over lesions); `python -m training explanations`.

| map | pointing game | mass in box | deletion area | insertion area | validation (same four) |
|---|---|---|---|---|---|
{rows}

Minus the centre prior on the same test images (paired; deletion: negative is better):

| map | pointing game | mass in box | deletion area | insertion area |
|---|---|---|---|---|
{paired_rows}

[Mean deletion and insertion curves, test split]({measured['figure']})
"""


def _comparison_rows(section: dict, metrics: tuple[str, ...], digits: dict, extra=None) -> str:
    """One row per candidate: its validation figures (each minus the baseline, paired), then test."""
    val, test = section["val"], section["test"]
    minus = next(k for row in val.values() if isinstance(row, dict) for k in row if k.startswith("minus_"))
    rows = []
    for name, row in val.items():
        if not (isinstance(row, dict) and "ci95" in row):
            continue
        cells = []
        for m in metrics:
            cell = f"{row[m]:{digits.get(m, '.3f')}}"
            if minus in row:
                d = row[minus][m]
                cell += f" ({d['difference']:+{digits.get(m, '.3f')}}; {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"
            cells.append(cell)
        chosen = section.get("chosen", section["served"])  # a choice made after the measurement, by its rule
        served = " (served)" if name == chosen else " (served when measured)" if name == section["served"] else ""
        more = f" | {extra(name)}" if extra else ""
        test_cells = " / ".join(f"{test[name][m]:{digits.get(m, '.3f')}}" for m in metrics)
        rows.append(f"| {name}{served} | " + " | ".join(cells) + f"{more} | {test_cells} |")
    return "\n".join(rows)


def _paired(row: dict, baseline: str, metric: str) -> str:
    d = row[baseline][metric]
    return f"{d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"


def _road_table(section: dict) -> str:
    """ROAD beside deletion for each candidate and the two image-blind maps (training/explanations.py's
    ``faithfulness``): validation with its paired differences, then test's; empty for a card measured before ROAD."""
    val, test = (section[split].get("faithfulness", section[split]) for split in ("val", "test"))
    rows = []
    for name, row in val.items():
        if not (isinstance(row, dict) and "road" in row):
            continue
        chosen = section.get("chosen", section["served"])
        mark = " (served)" if name == chosen else ""
        pairs = [_paired(part[name], key, "road") if key in part[name] else "" for part in (val, test)
                 for key in ("minus_centre_prior", "minus_random")]
        rows.append(f"| {name}{mark} | {row['deletion_auc']:.3f} | {row['road_morf']:.3f} | {row['road_lerf']:.3f} | "
                    f"{row['road']:+.3f} | {pairs[0]} | {pairs[1]} | {test[name]['road']:+.3f} | {pairs[2]} | "
                    f"{pairs[3]} |")
    if not rows:
        return ""
    header = ("| map | deletion | ROAD MoRF | ROAD LeRF | ROAD | minus centre prior | minus random | test ROAD | "
              "test minus centre prior | test minus random |\n" + "|---" * 10 + "|\n")
    return """
ROAD (remove and debias, Rong et al. 2022): the removed pixels are filled from their neighbours
(noisy linear imputation) rather than blurred, so the outline of what was removed tells the model
nothing. Probability of the explained class with 10, 30, 50, 70 and 90% of the pixels removed, most
relevant first (MoRF: lower is better) and least relevant first (LeRF: higher is better), each the mean
over the five; ROAD is half of LeRF minus MoRF (higher is better). Validation, then test; the
differences are paired with the centred prior and with a random map on the same images (95% interval
over lesions). Deletion (blurred) is repeated for reading beside it.

""" + header + "\n".join(rows) + "\n"


def _sanity_section(card: dict) -> str:
    """The maps under randomised models (training/sanity.py); empty if not measured."""
    section = card.get("sanity_checks")
    if not section:
        return ""
    heads = section["heads"]
    shuffled, refit = heads["labels shuffled"], heads["labels refit"]
    maps = [m for m, row in section.items() if isinstance(row, dict) and "verdict" in row]
    maps = ["LIME", *(m for m in maps if m != "LIME")]
    served = section["served"]["Grad-CAM"]
    names = {m: f"{m} (served)" if m in (served, "LIME") else m for m in maps}
    repeat = {"LIME": "seed 1"}
    variants = ["the same map again", "centre prior", "labels refit", "labels shuffled",
                *(s for s in section["stages"] if s in section[served])]

    shown = {"the same map again": "the same map again", "centre prior": "a centred Gaussian (image-blind)",
             "labels refit": "head refitted to the true labels", "labels shuffled": "head fitted to shuffled labels "
             "(against the refitted head's map)"}

    def cell(m: str, variant: str, metric: str) -> str:
        row = section[m].get(repeat.get(m, "served runtime") if variant == "the same map again" else variant)
        if not isinstance(row, dict):
            return ""
        low, high = row["ci95"][metric]
        flat = f"; {row['flat']:.0%} flat" if row.get("flat") else ""
        return f"{row[metric]:+.2f} ({low:+.2f} to {high:+.2f}){flat}" if metric == "spearman" else f"{row[metric]:.2f}"

    def table(metric: str) -> str:
        return (f"| compared with the trained map | {' | '.join(names[m] for m in maps)} |\n"
                + "|---" * (len(maps) + 1) + "|\n"
                + "\n".join(f"| {shown.get(v, 'random down to ' + v)} | " + " | ".join(cell(m, v, metric) for m in maps)
                             + " |" for v in variants))

    verdicts = "\n".join(f"- {names[m]}: " + ", ".join(
        f"{k.replace('_', ' ')} **{'passed' if v else 'not passed'}**" for k, v in section[m]["verdict"].items())
        for m in maps)
    return f"""
## Do the maps change when the model does? (sanity checks)
Adebayo et al. (NeurIPS 2018): a map that shows the model's reasons changes when the model is
destroyed. On {section['images']} images ({section['sample']}; validation and test together), each map of
the trained model's top class is compared with the same map of: the model with its weights shuffled
(each weight tensor's values permuted) block by block from the head down, cumulatively (a row per
block: it and every block above it are random; LIME, served with {section['served']['LIME']} at
{section['lime_samples']} samples, after {', '.join(section['lime_stages'])} only, as it costs a thousand model
calls a map); and a head fitted on frozen features of {shuffled['train_images']} training images with their
labels shuffled (training accuracy {shuffled['train_accuracy']:.1%}, validation balanced accuracy
{shuffled['val_balanced_accuracy']:.3f}), against the same head fitted the same way to the true labels
({refit['train_accuracy']:.1%}, {refit['val_balanced_accuracy']:.3f}; itself compared with the trained model).
For reading them: "the same map again"
is the served runtime's map (float16 gradients) for Grad-CAM and another seed for LIME (what unchanged
looks like), and the centred Gaussian shows what an image-blind map shares with the trained map.
`python -m training sanity`. The rule (docs/explanations.md): a check is passed when the upper end of
the rank correlation's interval is below {section['ceiling']} and below the lower end of the same map
again's, at every block (model randomisation) or for the shuffled labels (label randomisation).

Spearman rank correlation with the trained model's map (mean, 95% interval over lesions; "flat": the share
of maps left without any ranking, a constant map, which counts as 0):

{table('spearman')}

SSIM with the trained model's map (each scaled to [0, 1]; mean):

{table('ssim')}

{verdicts}
"""


def _cam_methods_section(card: dict) -> str:
    """Grad-CAM candidates side by side (training/cams.py); empty if not measured."""
    section = card.get("cam_methods")
    if not section:
        return ""
    metrics = ("pointing_hit", "energy_in_box", "deletion_auc", "insertion_auc")
    ms = section["val"]["ms"]
    rows = _comparison_rows(section, metrics, {}, lambda n: "" if n not in ms else f"{ms[n]:.1f}")
    return f"""
### Which Grad-CAM the page serves
Candidates of `explain.gradcam` on {section['val']['images']} validation and {section['test']['images']} test images
(top class; {section['cell']}): validation figures, each with its paired difference from the centre prior and
that difference's 95% interval over lesions; then the test split's four (`python -m training cams`). Cost:
median milliseconds for classify + map on this machine during the measurement (the speed goals are
measured by `python -m benchmarks`). The layer maps read the export's gradient model ({_size(card)}).

| map | pointing game | mass in box | deletion area | insertion area | ms | test (same four) |
|---|---|---|---|---|---|---|
{rows}
""" + _road_table(section)


def _size(card: dict) -> str:
    built = card.get("cam_model")
    return "not exported" if not built else f"`{', '.join(built['layers'])}`, {built['bytes'] / 1e6:.1f} MB"


def _chosen_text(section: dict) -> str:
    chosen = section.get("chosen")
    if not chosen or chosen == section["served"]:
        return ""
    return f"\nChosen after it by the rule in docs/explanations.md, and served since: **{chosen}**."


def _segmentations_section(card: dict) -> str:
    """LIME segmentations side by side (training/segmentations.py); empty if not measured."""
    section = card.get("lime_segmentations")
    if not section:
        return ""
    metrics = ("top5_in_box", "energy_in_box", "deletion_auc", "insertion_auc", "seconds")
    segments = section["val"]["segments"]
    rows = _comparison_rows(section, metrics, {"seconds": ".2f"}, lambda n: f"{segments[n]:.0f}")
    return f"""
### Which superpixels LIME perturbs
Segmentations of `explain.lime.SEGMENTATIONS` at {section['samples']} samples on {section['val']['images']}
validation and {section['test']['images']} test images (top class): the share of the area of the 5 strongest
supporting superpixels inside the lesion box, the positive mass in the box, deletion and insertion, and seconds
per explanation; validation figures with the paired difference from the served segmentation and its 95%
interval over lesions, then the test split's (`python -m training segmentations`).{_chosen_text(section)}

| segmentation | top-5 area in box | mass in box | deletion | insertion | seconds | superpixels | test (same five) |
|---|---|---|---|---|---|---|---|
{rows}
""" + _road_table(section)


def _robustness_section(card: dict) -> str:
    """How another clinic's vignettes, light and edits change the answers (training/shifts.py); empty if not
    measured."""
    measured = card.get("robustness")
    if not measured:
        return ""
    plain = {split: card["metrics"][split]["balanced_accuracy"] for split in measured}
    rows = "\n".join(
        f"| {v['shift']} | {v['balanced_accuracy']:.3f} | {t['balanced_accuracy']:.3f} | "
        f"{v['top_class_unchanged']:.1%} | {t['top_class_unchanged']:.1%} |"
        for v, t in zip(measured["val"], measured["test"], strict=True)
    )
    return f"""
## Robustness to another clinic's images
Other clinics' dermatoscopes often leave the image black outside a circle (in HAM10000 few images
have one, more often melanomas than naevi), and their light and cameras give other colours and
exposures; images passed on by others are often edited (levels stretched, saturation raised, cropped
closer). Each split's images under each shift (vignette radius in half-diagonals); unshifted,
balanced accuracy is {plain['val']:.3f} (validation) and {plain['test']:.3f} (test).

| shift | val balanced acc. | test balanced acc. | val top class unchanged | test top class unchanged |
|---|---|---|---|---|
{rows}
"""


def _ci(section: dict, name: str) -> str:
    low, high = section["ci95"][name]
    return f"{section[name]:.3f} ({low:.3f}-{high:.3f})"


def _external_section(card: dict) -> str:
    """Every validation set of the selection rule, with intervals, and the rule's verdict; empty if not measured."""
    measured = card.get("external_validation")
    if not measured:
        return ""
    rows = "\n".join(
        f"| {s['title']} | {s['images']} | {_ci(s, 'balanced_accuracy')} | {_ci(s, 'macro_auc')} | "
        f"{_ci(s, 'melanoma_recall')} | {_ci(s, 'melanoma_auc')} | {s['ece']:.3f} |"
        for s in measured["sets"].values()
    )
    methods = sorted({s["ci95"]["method"] for s in measured["sets"].values()})
    fewer = {s["title"]: s for s in measured["sets"].values() if len(s.get("rule_classes", s["classes"])) < len(
        s["classes"])}
    g_means = ("G, the mean over the sets of the rule's balanced accuracy (over the classes a set has at least 5 "
               "images of)" if any("rule_classes" in s for s in measured["sets"].values())
               else "G, the mean balanced accuracy over the sets")
    text = f"""
## Validation on other sources
The selection rule's sets ([{measured['rule']}](../../{measured['rule']})), read as a user hands
them over (the files, through `clf.predict`); `python -m training external EXPORT --data DIR`.
Balanced accuracy is the mean recall over the classes a set has, from the 7-way top class.
{g_means}: **{measured['G']:.3f}**.

| set | images | balanced accuracy (95% interval) | macro AUC | melanoma recall | melanoma AUC | ECE |
|---|---|---|---|---|---|---|
{rows}

Intervals: {'; '.join(methods)}.
""" + "".join(f"\n{title}, balanced accuracy over {', '.join(s['rule_classes'])} (the figure the rule counts): "
              f"{_ci(s, 'rule_balanced_accuracy')}.\n" for title, s in fewer.items())
    chosen = card.get("selection")
    if chosen:
        lines = [_candidate_row(name, c) for name, c in chosen["candidates"].items()]
        e_shipped = f", E {chosen['shipped']['E']:.3f}" if "E" in chosen["shipped"] else ""
        text += f"""
Candidates against the model shipped before ({chosen['shipped']['version']}, G {chosen['shipped']['G']:.3f}{e_shipped}),
paired on the same images (`python -m training choose`); balanced-accuracy differences per set:

| candidate | G | G gain | per set, candidate minus shipped (95% interval) | rule |
|---|---|---|---|---|
""" + "\n".join(lines) + f"\n\nChosen: **{chosen['chosen'] or 'none (the shipped model stays)'}**.\n"
    rejected = card.get("rejected")
    if rejected:
        text += """
Later candidates against this model, not shipped (`python -m training choose ... --record-rejected`;
the rule as it read when each was judged):

| candidate | G | G gain | per set, candidate minus this model (95% interval) | rule |
|---|---|---|---|---|
""" + "\n".join(_candidate_row(name, c) for name, c in rejected.items()) + "\n"
    return text


def _judged_section(card: dict) -> str:
    """Recipes judged by the rule from v35 on (``python -m training judge --record``); empty if none."""
    judged = card.get("judged")
    if not judged:
        return ""
    text = """
## Recipes judged on ISIC 2018 test half A
Each comparison: a candidate recipe's runs against a baseline recipe's, as the mean over each recipe's
runs, with 95% intervals that resample runs and lesions together (`python -m training judge`).
"""
    for label, verdict in judged.items():
        rows = "\n".join(
            f"| {key} | {d['baseline']:.3f} ({' / '.join(f'{v:.3f}' for v in d['baseline_runs'])}) | "
            f"{d['candidate']:.3f} ({' / '.join(f'{v:.3f}' for v in d['candidate_runs'])}) | "
            f"{d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}) |"
            for key, d in verdict["differences"].items())
        failed = [check for check, ok in verdict["checks"].items() if not ok]
        text += f"""
**{label}**: baseline {', '.join(f'`{b}`' for b in verdict['baseline'])}; candidate \
{', '.join(f'`{c}`' for c in verdict['candidate'])}. {'Passes' if verdict['passes'] else 'Does not pass'} \
([{verdict['rule']}](../../docs/selection-rule.md)){'' if verdict['passes'] else ': ' + '; '.join(failed)}.

| set / figure | baseline mean (runs) | candidate mean (runs) | difference (95% interval) |
|---|---|---|---|
{rows}
"""
    return text


def _candidate_row(name: str, c: dict) -> str:
    sets = per_set(c["paired"])
    diffs = "; ".join(f"{k} {judged(v)['difference']:+.3f} "
                      f"({judged(v)['ci95'][0]:+.3f} to {judged(v)['ci95'][1]:+.3f})" for k, v in sets.items())
    if "edited" in c["paired"]:
        e = c["paired"]["edited"]
        diffs += f"; E (edited HAM val) {e['difference']:+.3f} ({e['ci95'][0]:+.3f} to {e['ci95'][1]:+.3f})"
    failed = ", ".join(k for k, ok in c["checks"].items() if not ok)
    over = c.get("G_sets")
    g = f"{c['G']:.3f}" + (f" (over {', '.join(over)})" if over and len(over) < len(sets) else "")
    return f"| {name} | {g} | {c['paired']['G']:+.3f} | {diffs} | {'passes' if c['passes'] else 'fails: ' + failed} |"


def _similar_section(card: dict) -> str:
    """The similar-cases gallery: what it holds and how well its cases agree with the truth; empty if none."""
    built = card.get("similar_cases")
    if not built:
        return ""
    rows = "\n".join(
        f"| {kind}{' (served)' if kind == built['embedding'] else ''} | "
        f"{m['val']['true_class_among_k']:.1%} | {m['val']['vote_balanced_accuracy']:.3f} | "
        f"{m['test']['true_class_among_k']:.1%} | {m['test']['vote_balanced_accuracy']:.3f} |"
        for kind, m in built["measured"].items()
    )
    classifier, k = built["classifier_balanced_accuracy"], built["k"]
    return f"""
## Similar confirmed cases
The page shows the {built['k']} training images closest to the upload in the model's pooled
features, with their diagnosis and how it was confirmed. Gallery: {built['images']} images,
{built['from']}; `{built['file']}`, {built['bytes'] / 1e6:.1f} MB, SHA-256 `{built['sha256'][:16]}...`
(`python -m training gallery EXPORT --data DIR`). Embedding {built['chosen_on']}; the test split
was scored after the choice. For comparison, the classifier's own balanced accuracy:
{classifier['val']:.3f} (validation), {classifier['test']:.3f} (test).

| embedding | val: true class in {k} | val: vote balanced acc. | test: true class in {k} | test: vote balanced acc. |
|---|---|---|---|---|
{rows}
"""


def _throughput_text(train: dict) -> str:
    measured = train.get("throughput") or {}
    if not measured:
        return ""
    return "; training images per second (median over epochs, validation passes excluded): " + ", ".join(
        f"{phase} {m['median_images_per_second']:.1f}" for phase, m in measured.items())


def _extra_sources(extra: dict) -> list[str]:
    """The extra training sources of a card's data section (cards before BCN20000 name ISIC 2017 only)."""
    return sorted(extra.get("sources", {"isic2017": extra["images"]}))


def _extra_citation(data: dict) -> str:
    if not data.get("extra_train"):
        return ""

    return ("\nAlso trained on: " + "\n".join(EXTRA_SOURCES[s][1] for s in _extra_sources(data["extra_train"]))
            + "\nValidated on ISIC 2018 Task 3: Codella et al. 2019, arXiv:1902.03368.")


def _extra_line(data: dict) -> str:
    extra = data.get("extra_train")
    if not extra:
        return ""
    counts = ", ".join(f"{k} {v}" for k, v in extra.items() if k not in ("dataset", "images", "sources"))
    isic2017 = " ISIC 2017's validation and test parts are external validation, never trained on." if (
        "isic2017" in _extra_sources(extra)) else ""
    return (f"- Extra training images: {extra['images']} from the {extra['dataset']} ({counts}); they join the\n"
            f"  training split only.{isic2017}\n")


def _model_text(card: dict) -> str:
    return f"""## Model
- {card['architecture']}, input {card['input_size']['height']}x{card['input_size']['width']} px (height x width).
- Preprocessing: {card['preprocessing']}.
- Files: `skin_mobilenetv2.keras` (Keras 3) and `skin_mobilenetv2.tflite` (LiteRT, outputs the
  probabilities and the `out_relu` features in one call); SHA-256 in `model_card.json`.
  LiteRT vs Keras on {card['litert_vs_keras']['images']} test images: max |diff| of probabilities
  {card['litert_vs_keras']['max_abs_diff_probs']:.1e}."""


def _data_text(card: dict) -> str:
    data = card["data"]
    return f"""## Data
- {data['dataset']}: {sum(data['images'].values())} images of {sum(data['lesions'].values())} lesions.
- Split {data['split']}: train {data['images']['train']} images / {data['lesions']['train']} lesions,
  validation {data['images']['val']} / {data['lesions']['val']},
  test {data['images']['test']} / {data['lesions']['test']}. No lesion has images in two splits.
{_extra_line(data)}- Every choice (epochs, checkpoint, threshold) was made on the validation split; the test split
  was scored once, at the end."""


def _test_results_text(card: dict) -> str:
    test, val = card["metrics"]["test"], card["metrics"]["val"]
    point = card["malignant_operating_point"]
    rows = "\n".join(
        f"| {NAMES[c]} ({c}) | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
        + (f"{m['auc']:.3f}" if m["auc"] is not None else "n/a") + f" | {m['support']} |"
        for c, m in ((c, test["per_class"][c]) for c in CLASSES)
    )
    return f"""## Results on the test split ({test['n']} images)
{_results_table(test, val)}

| class | precision | recall | F1 | AUC | support |
|---|---|---|---|---|---|
{rows}

Risk summary: flagged as suspicious when P(mel) + P(bcc) + P(akiec) >= {point['threshold']:.3f},
a threshold {point['chosen_on']}. On the test split it catches {_pct(point['test_sensitivity'])} of
malignant lesions (sensitivity{_ci_text(test, 'malignant_sensitivity')}) and clears {_pct(point['test_specificity'])} of
benign ones (specificity{_ci_text(test, 'malignant_specificity')})."""


def _calibration_text(card: dict) -> str:
    test, val = card["metrics"]["test"], card["metrics"]["val"]
    unc = card["uncertainty"]
    flag = not_dermoscopic_section(card)
    extra = "".join(f" or the {name} score below {flag[name + '_threshold']:.3g}"
                    for name in INPUT_SCORES if name + "_threshold" in flag)
    return f"""## Calibration and when not to answer
- Temperature scaling fitted on validation: T = {card['temperature']:.3f}. Expected calibration error
  (15 bins) on the test split {test['ece_uncalibrated']:.3f} before, **{test['ece']:.3f}** after
  (validation {val['ece_uncalibrated']:.3f} / {val['ece']:.3f}).
- "Uncertain": {unc['rule']} ({unc['threshold']:.0%}). On the test split {_pct(unc['test']['uncertain_share'])}
  of images are uncertain; accuracy {_pct(unc['test']['accuracy_confident'])} on the confident ones,
  {_pct(unc['test']['accuracy_uncertain'])} on the uncertain ones.
- "This may not be a dermoscopic image": flagged when the energy score is below {flag['threshold']:.3f}
  or the structure score below {flag.get('structure_threshold', float('nan')):.3f}{extra} ({flag['score']}); thresholds:
  {flag['chosen_on']}. It flags {_pct(flag['test_dermoscopic_flagged'])} of the test split's dermoscopic
  images (false positives) and {_pct(flag['non_dermoscopic_flagged'])} of {flag['non_dermoscopic_images']}
  non-dermoscopic images (scikit-image photographs and micrographs, solid colours, noise, patterns,
  text; true positives)."""


FIGURES_TEXT = "\n".join((  # from the one list of figures (model/card.py), which the app's tab shows too
    "## Figures (test split unless named)",
    *(f"- [{f.link}]({f.file})" for f in FIGURES if f.link),
    "- Per-class precision, recall, F1 and support for both splits: `metrics` in `model_card.json`.",
    "",
    *(f"![{f.alt}]({f.file})" for f in FIGURES if f.alt),
))


def _recipes_text(card: dict) -> str:
    """The recipe table, test-time augmentation and the colour probe (all on validation)."""
    ablation_rows = "\n".join(
        f"| {r['run']} | {changed(i, r)} | "
        f"{r['val_balanced_accuracy']:.3f} | {r['val_macro_auc']:.3f} | {r['best_epoch']} | "
        f"{'n/a' if r.get('train_minutes') is None else round(r['train_minutes'])} |"
        for i, r in enumerate(card.get("ablation", []))
    )
    tta = card.get("test_time_augmentation", {})
    tta_single = tta.get("val_balanced_accuracy_single", float("nan"))
    tta_flips = tta.get("val_balanced_accuracy_4_flips", float("nan"))
    probe = card.get("colour_probe")
    probe_text = "" if not probe else (
        "\nColour preprocessing, linear probe on frozen ImageNet features (`python -m training probe`; "
        "logistic regression on train, scored on validation):\n\n| input | val balanced accuracy | val macro AUC |\n"
        "|---|---|---|\n" + "\n".join(f"| {name} | {r['balanced_accuracy']:.3f} | {r['macro_auc']:.3f} |"
                                     for name, r in probe.items())
        + "\n\n" + _probe_verdict(probe, card) + "\n"
    )
    soups = ("; a soup (weights averaged, `python -m training soup`) has no epochs of its own: \"soup N\" "
             "counts its members, and its minutes are its runs' summed, each run once (`v33 epochs 7-12` is one run's "
             "`finetune.eNN.weights.h5` files, `v24:finetune` its `finetune.weights.h5`)"
             if any(r["best_epoch"].startswith("soup") for r in card.get("ablation", [])) else "")
    return f"""## Recipe choices (validation split only)
Best validation epoch of this run beside the other runs measured; "changed" lists each run's
settings that differ from this one. Only the first row's model ships. Training minutes were
measured in each run's own session, on 2-core machines whose speed differed between sessions{soups}.

| run | changed | val balanced accuracy | val macro AUC | best epoch | training min |
|---|---|---|---|---|---|
{ablation_rows}

Test-time augmentation (mean over 4 flips), validation balanced accuracy:
{tta_single:.3f} without, {tta_flips:.3f} with, at {tta.get('cost', 'n/a')}; the shipped runtime does not use it.
{probe_text}"""


# each renders its section, or "" without it
STUDY_SECTIONS = (_external_section, _judged_section, _similar_section, _robustness_section, _explanations_section,
                  _cam_methods_section, _segmentations_section, _sanity_section)


def _soup_text(train: dict) -> str:
    soup = train["soup"]
    differ = "; ".join(f"{k}: " + ", ".join(f"{run} {v}" for run, v in values.items())
                       for k, values in soup["differ"].items()) or "nothing"
    one_run = soup.get("runs", len(soup["members"])) == 1
    differ = "they are one run's weights saved at different epochs" if one_run else f"they differ in {differ}"
    named = (" (a run's name stands for its best weights, run:F for its F.weights.h5)"
             if any(":" in m for m in soup["members"]) else "")
    commands = "\n".join(f"  - `{c}`" for c in soup["commands"])
    return f"""## Training
- Command: `{train['command']}`
- The uniform average of the weights of {", ".join(soup["members"])}{named} (a model soup: one network,
  no training of its own). The members share the network, input, split, seed and ImageNet's frozen
  batch-norm statistics; {differ}. {"It was" if one_run else "Each was"} trained by:
{commands}
- Training time: {train['train_seconds'] / 60:.0f} min, {"that run's" if one_run else "the members' summed"}, \
on {train['machine']}."""


def _kept_text(best: dict) -> str:
    """Which weights the run kept: its best epoch on validation, or the average of its late epochs."""
    if best["phase"] == "average":
        epochs = best["averaged_epochs"]
        return f"the weights kept are the average of fine-tuning epochs {epochs[0]}-{epochs[-1]}, no epoch picked"
    return f"best epoch by validation balanced accuracy\n  ({best['phase']} epoch {best['epoch']})"


def _training_text(card: dict) -> str:
    train = card["training"]
    if "soup" in train:
        return _soup_text(train)
    config = train.get("config", {})
    bn = "batch norm trained too" if config.get("train_bn") else "batch-norm statistics frozen"
    return f"""## Training
- Command: `{train['command']}`
- Two phases: the head on frozen ImageNet features, then the whole network ({bn})
  with a cosine learning-rate schedule; {", ".join(recipe_phrases(config))},
  label smoothing, flips / zoom / colour jitter; {_kept_text(train['best_epoch'])}.
- Training time: {train['train_seconds'] / 60:.0f} min on {train['machine']}{_throughput_text(train)}."""


def _limitations_text(card: dict) -> str:
    return f"""## Limitations
- Dermatoscopic images only; photographs of skin without a dermatoscope are outside what it learnt.
- HAM10000 comes from two centres (Vienna, Queensland) and mostly fair skin: darker skin types are
  under-represented, and performance on them is unknown.
- Seven classes only: any other lesion is forced into one of them.
- Trained on {card['data'].get('image_size', '200x150 px')} copies of the HAM10000 images."""


def _licence_text(card: dict) -> str:
    return f"""## Licence and citation
Trained on HAM10000: Tschandl, P., Rosendahl, C. & Kittler, H. Scientific Data 5, 180161 (2018),
doi:10.1038/sdata.2018.161. The data are CC BY-NC 4.0; this model, derived from them, is shared
under the same terms (attribution, non-commercial).{_extra_citation(card['data'])}
"""


def render_markdown(card: dict) -> str:
    """MODEL_CARD.md: the card's sections in reading order, each rendered by its own function."""
    header = (f"# Model card: {card['name']} ({card.get('version', '')})\n\n"
              "**Not a medical device.** A research and teaching model; it gives no diagnosis.")
    core = [header, _model_text(card), _data_text(card), _test_results_text(card), _calibration_text(card),
            FIGURES_TEXT, _recipes_text(card)]
    studies = "".join(section(card) for section in STUDY_SECTIONS)
    closing = [_training_text(card), _limitations_text(card), _licence_text(card)]
    return "\n\n".join(core) + studies + "\n" + "\n\n".join(closing)


def write_card(out_dir: str | Path, card: dict, figures_from: str | Path | None = None) -> None:
    """The model card as JSON and Markdown, with its figures copied beside it."""
    out_dir = Path(out_dir)
    write_json(out_dir, card)
    (out_dir / "MODEL_CARD.md").write_text(render_markdown(card))
    for name in RUN_FIGURES if figures_from else ():
        shutil.copy(Path(figures_from) / name, out_dir / name)


def record(export_dir: str | Path, sections: dict, remove: tuple[str, ...] = ()) -> dict:
    """Put a study's ``sections`` into an export's card (``remove``: their older names), keep every other
    section and the model files as they are, and render the Markdown again; returns the card."""
    card = update_sections(export_dir, sections, remove)
    (Path(export_dir) / "MODEL_CARD.md").write_text(render_markdown(card))
    return card
