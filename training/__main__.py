"""Train:    python -m training --data DIR --out runs/NAME [options]
Evaluate: python -m training evaluate runs/NAME [--compare runs/OLD model_card.json ...]
          (re-score the best weights, figures, export; --compare fills the ablation table)
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
Probe:    python -m training probe --data DIR --out runs/probe   (colour preprocessing, linear probe)"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def _export_args(command: str, action, argv: list[str], images: int | None = None) -> argparse.Namespace:
    """Arguments of a command that measures an exported model on its own split, in place.

    ``images``: the command scores a sample of each split, this many images by default.
    """
    parser = argparse.ArgumentParser(prog=f"python -m training {command}", description=action.__doc__.splitlines()[0])
    parser.add_argument("export", help="folder with the LiteRT model and model_card.json")
    parser.add_argument("--data", required=True, help="the HAM10000 folder the model was trained on")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (the card names it)")
    if images is not None:
        parser.add_argument("--images", type=int, default=images, help="images per split")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import sys

    from .train import BALANCE, Config, finish_run, train

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        parser = argparse.ArgumentParser(prog="python -m training evaluate",
                                         description="Re-score a run's best weights, redraw its figures, re-export.")
        parser.add_argument("run", help="run folder")
        parser.add_argument("--compare", nargs="*", default=[],
                            help="earlier run folders or model_card.json files (a card brings its own table), "
                                 "for the ablation table")
        parser.add_argument("--probe", default=None, help="probe.json from `python -m training probe`, for the card")
        args = parser.parse_args(argv[1:])
        finish_run(args.run, args.compare, args.probe)
        return

    if argv[:1] == ["card"]:
        from .card import changed
        from .recipes import add_to_card

        parser = argparse.ArgumentParser(prog="python -m training card",
                                         description="Add runs to a model card's recipe table (validation figures).")
        parser.add_argument("card", help="model_card.json; MODEL_CARD.md beside it is re-rendered")
        parser.add_argument("--add", nargs="*", default=[], help="run folders or model_card.json files")
        parser.add_argument("--probe", default=None, help="probe.json from `python -m training probe`: "
                                                          "replaces the card's colour-preprocessing table")
        args = parser.parse_args(argv[1:])
        if not args.add and not args.probe:
            parser.error("nothing to do: give --add RUN ... and/or --probe probe.json")
        for i, row in enumerate(add_to_card(args.card, args.add, args.probe)):
            print(f"{row['run']:>12}  val balanced accuracy {row['val_balanced_accuracy']:.3f}  "
                  f"AUC {row['val_macro_auc']:.3f}  {changed(i, row)}")
        return

    if argv[:1] == ["flags"]:
        from .ood import recalibrate

        args = _export_args("flags", recalibrate, argv[1:])
        ood = recalibrate(args.export, args.data, args.seed)
        print(f"not dermoscopic: flags {ood['val_dermoscopic_flagged']:.1%} of validation, "
              f"{ood['test_dermoscopic_flagged']:.1%} of test, {ood['non_dermoscopic_flagged']:.1%} of "
              f"{ood['non_dermoscopic_images']} non-dermoscopic images; "
              f"missed: {', '.join(ood['non_dermoscopic_missed'])}")
        return

    if argv[:1] == ["robustness"]:
        from .shifts import measure_exported

        args = _export_args("robustness", measure_exported, argv[1:])
        for split, rows in measure_exported(args.export, args.data, args.seed).items():
            for row in rows:
                print(f"{split:>5} {row['shift']:<34} balanced accuracy {row['balanced_accuracy']:.3f}, "
                      f"top class unchanged {row['top_class_unchanged']:.1%}")
        return

    if argv[:1] == ["intervals"]:
        from .intervals import measure_exported as measure_intervals

        args = _export_args("intervals", measure_intervals, argv[1:])
        for split, ci in measure_intervals(args.export, args.data, args.seed).items():
            for name, (low, high) in ((k, v) for k, v in ci.items() if k != "method"):
                print(f"{split:>5} {name:<22} {low:.3f} - {high:.3f}")
        return

    if argv[:1] == ["explanations"]:
        from .explanations import IMAGES_PER_SPLIT, METHODS, METRICS
        from .explanations import measure_exported as measure_explanations

        args = _export_args("explanations", measure_explanations, argv[1:], images=IMAGES_PER_SPLIT)
        measured = measure_explanations(args.export, args.data, args.images, args.seed)
        for split in ("val", "test"):
            for method in METHODS:
                print(f"{split:>5} {method:<13} " + "  ".join(f"{m} {measured[split][method][m]:.3f}" for m in METRICS))
        return

    if argv[:1] == ["compare"]:
        from .intervals import compare_runs

        parser = argparse.ArgumentParser(prog="python -m training compare",
                                         description="Paired differences of runs from the first, with intervals.")
        parser.add_argument("runs", nargs="+", help="run folders; the first is the baseline")
        parser.add_argument("--split", choices=("val", "test"), default="val")
        args = parser.parse_args(argv[1:])
        for run, differences in compare_runs(args.runs, args.split).items():
            print(f"{run} - {args.runs[0]} ({args.split}): " + "; ".join(
                f"{name} {d['difference']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f})"
                for name, d in differences.items()))
        return

    if argv[:1] == ["probe"]:
        from . import probe as colour_probe

        parser = argparse.ArgumentParser(prog="python -m training probe", description=colour_probe.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--data", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--limit", type=int, default=None, help="use only N images (smoke tests)")
        args = parser.parse_args(argv[1:])
        colour_probe.probe(args.data, args.out, limit=args.limit)
        return

    from model.network import COLOUR

    from .distribute import STRATEGIES
    from .mixing import MIX

    defaults = Config(data="", out="")
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="folder with HAM10000_metadata.csv and images/")
    parser.add_argument("--out", required=True, help="run folder (created; an existing one is resumed)")
    parser.add_argument("--size", type=_size, default=defaults.size, help="input HxW, e.g. 150x200")
    for name in ("batch_size", "head_epochs", "finetune_epochs", "warmup_epochs", "patience", "seed", "workers"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("head_lr", "finetune_lr", "dropout", "label_smoothing"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--finetune-from", default=defaults.finetune_from,
                        help="first layer trained in phase 2 (Conv1: the whole network)")
    parser.add_argument("--rotate", action="store_true", help="also rotate training images by random angles")
    parser.add_argument("--balance", choices=BALANCE, default=defaults.balance,
                        help="class imbalance: inverse-frequency weights, logit-adjusted loss, or none")
    parser.add_argument("--vignette", type=float, default=defaults.vignette,
                        help="share of training images given a random dermatoscope vignette (0: none)")
    parser.add_argument("--cast", type=float, default=defaults.cast,
                        help="random exposure and per-channel gains in [1 - CAST, 1 + CAST] (0: none)")
    parser.add_argument("--ema", type=float, default=defaults.ema,
                        help="phase 2 keeps a moving average of the weights with this momentum (0: off)")
    parser.add_argument("--colour", choices=COLOUR, default=defaults.colour,
                        help="a first layer of the network: Shades of Gray colour constancy, "
                             "grayscale + histogram equalisation, or none")
    parser.add_argument("--mix", choices=MIX, default=defaults.mix,
                        help="mix pairs of training images (CutMix: a box of one in the other; MixUp: a blend), "
                             "targets and class weights in the same proportion")
    parser.add_argument("--mix-share", type=float, default=defaults.mix_share,
                        help="share of training images mixed when --mix is on")
    parser.add_argument("--train-bn", action="store_true",
                        help="phase 2 also trains batch norm (scales and statistics); default: ImageNet's, frozen")
    parser.add_argument("--weights", default=defaults.weights, help="ImageNet MobileNetV2 .h5 (no top)")
    parser.add_argument("--limit", type=int, default=None, help="use only N images (smoke tests)")
    parser.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy,
                        help="tf.distribute: mirrored (all local GPUs, else the logical CPUs) or multiworker "
                             "(hosts from TF_CONFIG); --batch-size is the global batch (docs/scaling.md)")
    args = parser.parse_args(argv)
    train(Config(**vars(args)))


if __name__ == "__main__":
    main()
