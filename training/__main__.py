"""Train:    python -m training --data DIR --out runs/NAME [options]
Evaluate: python -m training evaluate runs/NAME [--recipes runs/OLD model_card.json ...]
          (re-score the best weights, figures, export; --recipes fills the recipe table)
Soup:     python -m training soup runs/A runs/B ... --out runs/NAME
          (the uniform average of runs' best weights, one network; scored, calibrated and exported as a run)
Card:     python -m training card model/shipped/model_card.json --add runs/NAME ... [--probe probe.json]
          (add runs that were not shipped to a card's recipe table, or a new colour probe; the model is untouched)
Flags:    python -m training flags model/shipped --data DIR
          (recalibrate the not-dermoscopic flag of an exported model; the model is untouched)
Shifts:   python -m training robustness model/shipped --data DIR
          (how vignettes and colour casts change an exported model's answers; into its card)
Intervals: python -m training intervals model/shipped --data DIR
          (95% lesion-bootstrap intervals of an exported model's figures; into its card)
Compare:  python -m training compare runs/BASE runs/OTHER ... [--split val]
          (each run minus the first on the same images, with paired 95% intervals)
Explanations: python -m training explanations model/shipped --data DIR [--images 140]
          (Grad-CAM and LIME scored against lesion boxes and by deletion / insertion; into its card)
External: python -m training external model/shipped --data DIR
          (HAM10000 validation, ISIC 2017 validation + test, ISIC 2018 validation; into its card)
Choose:   python -m training choose model/shipped runs/NAME/export ... --data DIR [--out choice.json]
          (each candidate against the shipped model under docs/selection-rule.md, paired; into the chosen card)
CAMs:     python -m training cams model/shipped --data DIR [--images 70]
          (the Grad-CAM candidates of explain.gradcam scored and timed side by side; into its card)
Segmentations: python -m training segmentations model/shipped --data DIR [--images 35]
          (LIME's superpixel algorithms and scales scored and timed side by side; into its card)
Sanity:   python -m training sanity model/shipped --data DIR [--images 14]
          (the served Grad-CAM and LIME of randomised models and of a head fitted to shuffled labels; into its card)
Gallery:  python -m training gallery model/shipped --data DIR
          (the similar-cases gallery from the training split, its embedding chosen on validation; into its card)
Judge:    python -m training judge --baseline runs/A/export runs/B/export --candidate runs/C/export ... --data DIR
          (a candidate recipe's runs against the baseline recipe's, on ISIC 2018 test half A and the guards)
Unpack:   python -m training unpack model/shipped --data DIR --out runs/NAME
          (a run folder rebuilt from an export, for `evaluate` to re-card it with today's code)
Probe:    python -m training probe --data DIR --out runs/probe   (colour preprocessing, linear probe)
Examples: python -m training examples model/shipped --data DIR --out examples/
          (the app's teaching examples, chosen by a stated rule from the model's test split)"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The command line is where imports wait inside functions: a subcommand imports what it runs when it runs,
# so `--help`, `card` and the studies' help start in a second and load no TensorFlow (tests/test_studies.py,
# tests/test_training_cli.py). Every other module of training/ imports at its top.


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def _evaluate(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("run", help="run folder")
    parser.add_argument("--recipes", "--compare", dest="recipes", nargs="*", default=[],
                        help="earlier run folders or model_card.json files for the card's recipe table (a card "
                             "brings its own rows); --compare is its older name")
    parser.add_argument("--probe", default=None, help="probe.json from `python -m training probe`, for the card")

    def run(args):
        from .train import finish_run

        finish_run(args.run, args.recipes, args.probe)

    return run


def _soup(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("runs", nargs="+", help="finished run folders of one recipe family (same network, split, "
                                                "seed and frozen batch norm), each for its best weights, or weights "
                                                "files inside them (runs/A/finetune.weights.h5: its last epoch)")
    parser.add_argument("--out", required=True, help="the soup's run folder (new)")
    parser.add_argument("--recipes", nargs="*", default=[], help="earlier run folders or model_card.json files for "
                                                                  "the card's recipe table")

    def run(args):
        from .soup import make_soup
        from .train import finish_run

        finish_run(make_soup(args.runs, args.out), args.recipes)

    return run


def _card(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("card", help="model_card.json; MODEL_CARD.md beside it is re-rendered")
    parser.add_argument("--add", nargs="*", default=[], help="run folders or model_card.json files")
    parser.add_argument("--probe", default=None, help="probe.json from `python -m training probe`: "
                                                      "replaces the card's colour-preprocessing table")

    def run(args):
        from .card import changed
        from .recipes import add_to_card

        if not args.add and not args.probe:
            parser.error("nothing to do: give --add RUN ... and/or --probe probe.json")
        for i, row in enumerate(add_to_card(args.card, args.add, args.probe)):
            print(f"{row['run']:>12}  val balanced accuracy {row['val_balanced_accuracy']:.3f}  "
                  f"AUC {row['val_macro_auc']:.3f}  {changed(i, row)}")

    return run


def _compare(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("runs", nargs="+", help="run folders; the first is the baseline")
    parser.add_argument("--split", choices=("val", "test"), default="val", help="the split the runs are compared on")

    def run(args):
        from .studies.intervals import compare_runs

        for name, differences in compare_runs(args.runs, args.split).items():
            print(f"{name} - {args.runs[0]} ({args.split}): " + "; ".join(
                f"{k} {d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"
                for k, d in differences.items()))

    return run


def _validation_args(parser: argparse.ArgumentParser) -> None:
    from . import external

    parser.add_argument("--data", required=True, help="the HAM10000 folder (its validation split is one set)")
    parser.add_argument("--external-root", default=None,
                        help=f"folder holding {external.ISIC2017_DIR}/ and {external.ISIC2018_DIR}/ "
                             "(default: the one holding --data)")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (the card names it)")


def _external(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("export", help="export folder (LiteRT model and model_card.json)")
    _validation_args(parser)

    def run(args):
        from . import external

        measured = external.measure_exported(args.export, args.data, args.seed, args.external_root)
        for name, s in measured["sets"].items():
            print(f"{name:>13} {s['images']:>5} images  " + "  ".join(
                f"{k} {s[k]:.3f} ({s['ci95'][k][0]:.3f}-{s['ci95'][k][1]:.3f})" for k in external.STATISTICS))
            print(f"{'':>13} balanced accuracy over {', '.join(s['rule_classes'])} (the rule's figure): "
                  f"{s[external.RULE_FIGURE]:.3f}")
        print(f"G (mean of the rule's balanced accuracies) {measured['G']:.3f}")

    return run


def _choose(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("export", help="export folder (LiteRT model and model_card.json); the shipped one, "
                                       "the baseline")
    parser.add_argument("candidates", nargs="+",
                        help="candidate export folders; A+B is their ensemble (scored, never chosen)")
    parser.add_argument("--out", default=None, help="write the whole comparison here (JSON)")
    parser.add_argument("--record-rejected", action="store_true",
                        help="when none passes, keep the comparison in the shipped model's card")
    _validation_args(parser)

    def run(args):
        import json
        from pathlib import Path

        from .selection import choose, rule

        result = choose.choose(args.export, args.candidates, args.data, args.seed, args.external_root)
        print(f"shipped {result['shipped']['version']}: G {result['shipped']['G']:.3f}, "
              f"E {result['shipped']['E']:.3f}")
        for name, c in result["candidates"].items():
            e = c["paired"]["edited"]
            shipped_g = rule.generalisation({k: result["shipped"]["sets"][k] for k in c["G_sets"]})
            print(f"{name}: G {c['G']:.3f} over {', '.join(c['G_sets'])} (shipped {shipped_g:.3f}: "
                  f"{c['paired']['G']:+.3f}); " + "; ".join(
                f"{k} {rule.judged(v)['difference']:+.3f} ({rule.judged(v)['ci95'][0]:+.3f} to "
                f"{rule.judged(v)['ci95'][1]:+.3f})" for k, v in rule.per_set(c["paired"]).items())
                + f"; E {c['E']:.3f} ({e['difference']:+.3f}, {e['ci95'][0]:+.3f} to {e['ci95'][1]:+.3f})"
                + ("" if c["shippable"] else " (an ensemble: scored, never chosen)"))
            for check, ok in c["checks"].items():
                print(f"    {'pass' if ok else 'FAIL'}  {check}")
        print(f"chosen: {result['chosen'] or 'none: the shipped model stays'}")
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
        if result["chosen"]:
            choose.record_choice(result)
        elif args.record_rejected:
            choose.record_rejected(result)

    return run


def _examples(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("export", help="folder with the LiteRT model and model_card.json")
    parser.add_argument("--data", required=True, help="the HAM10000 folder the model was trained on")
    parser.add_argument("--out", default="examples", help="folder for the images, examples.csv and README.md")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (the card names it)")

    def run(args):
        from .studies.examples import write_examples

        for row in write_examples(args.export, args.data, args.out, args.seed):
            print(f"{row['file']}  {row['caption']}")

    return run


def _judge(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("--baseline", nargs="+", required=True,
                        help="the baseline recipe's runs: their export folders (A+B: the mean of two exports)")
    parser.add_argument("--candidate", nargs="+", required=True, help="the candidate recipe's runs' export folders")
    parser.add_argument("--cache", default="runs/probs", help="folder keeping each model's answers per set")
    # model.metrics.RESAMPLES, written out: it loads scikit-learn, which --help need not wait for
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", default=None, help="write the whole verdict here (JSON)")
    parser.add_argument("--record", nargs=2, metavar=("EXPORT", "LABEL"), default=None,
                        help="keep the verdict in this export's card under LABEL (the shipped model's, or the chosen "
                             "one's)")
    _validation_args(parser)

    def run(args):
        import json
        from pathlib import Path

        from .selection.judge import judge, record, report

        result = judge(args.baseline, args.candidate, args.data, args.seed, args.external_root, args.cache,
                       args.resamples)
        print("\n".join(report(result)))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
        if args.record:
            record(result, *args.record)

    return run


def _unpack(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("export", help="export folder (skin_mobilenetv2.keras and model_card.json)")
    parser.add_argument("--data", required=True, help="the HAM10000 folder the model was trained on")
    parser.add_argument("--out", required=True, help="the run folder to write (new)")

    def run(args):
        from .unpack import unpack

        print(f"wrote {unpack(args.export, args.data, args.out)}; next: python -m training evaluate {args.out}")

    return run


def _probe(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("--data", required=True, help="folder with HAM10000_metadata.csv and images/")
    parser.add_argument("--out", required=True, help="folder for probe.json")
    parser.add_argument("--limit", type=int, default=None, help="use only N images (smoke tests)")

    def run(args):
        from . import probe as colour_probe

        colour_probe.probe(args.data, args.out, limit=args.limit)

    return run


def _study(study) -> Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], None]]:
    """The subcommand of a registered study (training/studies.py): an export measured on its own split, in place."""

    def build(parser: argparse.ArgumentParser):
        parser.add_argument("export", help="folder with the LiteRT model and model_card.json")
        parser.add_argument("--data", required=True, help="the HAM10000 folder the model was trained on")
        parser.add_argument("--seed", type=int, default=0, help="the split's seed (the card names it)")
        if study.sampled:
            parser.add_argument("--images", type=int, default=study.default_images(), help="images per split")

        def run(args):
            for line in study.report(study.measure(args.export, args.data, args.seed, getattr(args, "images", None))):
                print(line)

        return run

    return build


def _doc(module: str, attribute: str = "__doc__") -> Callable[[], str]:
    """A description read from a training module's source when its subcommand is built (not imported)."""
    from .studies import constant

    return lambda: constant(module, attribute)


# subcommand -> (its description, when built; adds its arguments and returns what runs it)
SUBCOMMANDS: dict[str, tuple[Callable[[], str], Callable]] = {
    "evaluate": (lambda: "Re-score a run's best weights, redraw its figures, re-export.", _evaluate),
    "soup": (_doc("soup"), _soup),
    "card": (lambda: "Add runs to a model card's recipe table (validation figures).", _card),
    "compare": (lambda: "Paired differences of runs from the first, with intervals.", _compare),
    "external": (_doc("external"), _external),
    "choose": (_doc("external"), _choose),
    "examples": (_doc("studies.examples", "RULE"), _examples),
    "probe": (_doc("probe"), _probe),
    "unpack": (_doc("unpack"), _unpack),
    "judge": (_doc("selection.judge"), _judge),
}


def _commands() -> dict[str, tuple[Callable[[], str], Callable]]:
    """``SUBCOMMANDS`` and one per registered study (training/studies.py)."""
    from .studies import STUDIES

    return {**SUBCOMMANDS, **{
        name: ((lambda s=s: f"{s.help[0].upper()}{s.help[1:]}; into its card (section {s.key!r})."), _study(s))
        for name, s in STUDIES.items()}}


def command_parser(names: list[str] | None = None) -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    """``python -m training SUBCOMMAND ...``: an argparse subparser per command (``names``: only those, so
    a run imports what its own command needs); returns the parser and the commands' runners."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__, formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for name, (description, build) in _commands().items():
        if names is None or name in names:
            sub = subparsers.add_parser(name, prog=f"python -m training {name}", description=description(),
                                        formatter_class=HelpFormatter)
            runners[name] = build(sub)
    return parser, runners


def main(argv: list[str] | None = None) -> None:
    """A subcommand (``SUBCOMMANDS`` and the registered studies), or, without one, a training run."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in _commands():
        parser, runners = command_parser(argv[:1])
        args = parser.parse_args(argv)
        runners[args.command](args)
        return

    from .config import Config

    args = train_parser().parse_args(argv)  # before TensorFlow loads: `--help` and a bad flag answer at once
    from .train import train

    train(Config(**vars(args)))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default (or "required") after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required:
            return f"{action.help} (required)"
        if "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def train_parser() -> argparse.ArgumentParser:
    """The training flags, generated from ``Config`` so an option's default and help live in one place."""
    from dataclasses import MISSING, fields

    from .config import Config

    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__, formatter_class=HelpFormatter)
    for f in fields(Config):
        if "help" not in f.metadata:
            continue  # recorded, not chosen (the command line itself)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else f.default_factory()
        if f.name in ("data", "out"):
            parser.add_argument(flag, required=True, help=f.metadata["help"])
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=f.metadata["help"])
        elif f.name == "size":
            parser.add_argument(flag, type=_size, default=default, metavar="HxW",
                                help=f"{f.metadata['help']} (default: {default[0]}x{default[1]})")
        else:
            kind = {"int": int, "float": float, "int | None": int}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=default, choices=f.metadata["choices"],
                                help=f.metadata["help"])
    return parser


TRAINING_ONLY = ("keras", "tensorflow", "pandas")  # requirements-dev.txt's, not serving's requirements.txt

if __name__ == "__main__":
    try:
        main()
    except ModuleNotFoundError as exc:  # serving's install lacks them: say what to install, not a traceback
        if (exc.name or "").split(".")[0] not in TRAINING_ONLY:
            raise
        raise SystemExit(f"python -m training needs {exc.name}, which requirements.txt (serving) does not "
                         "install: pip install -r requirements-dev.txt") from None
