"""One training run's options, each declared once: its default, help, choices, what older runs did,
whether the recipe table compares it and how the card's recipe sentence names it.

``python -m training``'s flags, the recipe table's columns and the card's recipe are generated from
these fields; the defaults are the shipped model's recipe.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, fields

from model.architecture import COLOUR_CHOICES, IMAGENET_WEIGHTS
from model.preprocessing import INPUT_SIZE

# the choices of --strategy (training.distribute) and --mix (training.mixing): here, so that options,
# --help and the recipe table read them without loading TensorFlow
STRATEGIES = ("none", "mirrored", "multiworker")
MIX = ("none", "cutmix", "mixup")
SAMPLING = ("none", "balanced")  # training.sampling
SELECT = ("balanced_accuracy", "teacher")  # what keeps an epoch on validation (training.train)
EXTRA_TARGETS = ("label", "teacher")  # what --extra / --bcn images learn from when there is a --teacher
TEACH = ("offline", "online")  # when the --teacher answers: once per image and flip, or for each batch as augmented
MIX_NAMES = {"cutmix": "CutMix (a random box of another training image, Beta(1, 1) area)",
             "mixup": "MixUp (a blend with another training image, Beta(0.2, 0.2) weight)"}
EPOCH_PREFIX = "finetune.e"  # --keep-epochs / --average-from save phase 2's epoch N as finetune.eNN.weights.h5


def epoch_weights(epoch: int) -> str:
    """The file phase 2's epoch ``epoch`` (from 1) is kept in, inside the run folder."""
    return f"{EPOCH_PREFIX}{epoch:02d}.weights.h5"


ENSEMBLE_JOIN = "+"  # "runs/a/export+runs/b/export" names the mean of their probabilities (--teacher, judge, choose)
SOUP_FILE = "soup.json"  # in a soup's run folder (training/soup.py): its members, what they differ in, their commands
BALANCE = ("weights", "logit_adjust", "none")
BALANCE_PHRASES = {
    "weights": "class-balanced loss weights",
    "logit_adjust": "logit-adjusted loss (log class priors added to the logits in training only)",
    "none": "no class balancing",
}


def option(default, help: str, choices: tuple | None = None, before=None, recipe=None, compared: bool = True,
           **kwargs):
    """A Config field that is also a ``python -m training`` flag: its default, help and choices in one place.

    ``before``: what runs that predate the option did (the recipe table reads an old config's
    missing option as this); ``None`` means the default. ``recipe``: (config dict) -> the card's
    phrase for it, or None when it is off. ``compared``: whether the recipe table shows a run
    that differs in it (not for paths and machine settings).
    """
    metadata = {"help": help, "choices": choices, "before": default if before is None else before,
                "recipe": recipe, "compared": compared}
    if callable(default):
        return field(default_factory=default, metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class Config:
    """One training run. The defaults are the recipe of the shipped model (``python -m training`` trains it)."""

    data: str = option("", "folder with HAM10000_metadata.csv and images/", compared=False)
    out: str = option("", "run folder (created; an existing one is resumed)", compared=False)
    size: tuple[int, int] = option(INPUT_SIZE, "network input HxW in pixels, e.g. 150x200")
    batch_size: int = option(32, "training batch size")
    head_epochs: int = option(3, "phase 1: epochs training the head on frozen ImageNet features")
    head_lr: float = option(1e-3, "phase 1 learning rate")
    # the shipped v13's schedule; every run's config records its own
    finetune_epochs: int = option(26, "phase 2: epochs fine-tuning the network (early stopping may end it sooner)")
    # peak after the warm-up; beat 5e-5 on validation (the card's recipe table)
    finetune_lr: float = option(1e-4, "phase 2 peak learning rate (cosine decay after the warm-up)")
    warmup_epochs: int = option(1, "phase 2 epochs of linear learning-rate warm-up")
    finetune_from: str = option("Conv1", "first layer trained in phase 2 (Conv1: the whole network)")
    # validation balanced accuracy is noisy (14-16 images of df, vasc)
    patience: int = option(8, "phase 2 stops after this many epochs without a validation gain")
    dropout: float = option(0.2, "dropout before the dense head")
    label_smoothing: float = option(0.05, "label smoothing of the cross-entropy")
    balance: str = option("weights", "class imbalance: inverse-frequency weights, logit-adjusted loss, or none",
                          choices=BALANCE, recipe=lambda c: BALANCE_PHRASES[c["balance"]])
    rotate: bool = option(False, "also rotate training images by random angles (reflected borders)",
                          recipe=lambda c: "random rotations" if c["rotate"] else None)
    # the shipped v13 trained with vignettes: other clinics' dermatoscopes black out the corners
    vignette: float = option(0.3, "share of training images given a random dermatoscope vignette (0: none)",
                             before=0.0, recipe=lambda c: c["vignette"] and (
                                 f"random dermatoscope vignettes on {c['vignette']:.0%} of training images"))
    cast: float = option(0.0, "random exposure and per-channel gains in [1 - CAST, 1 + CAST] (0: none)",
                         recipe=lambda c: c["cast"] and (
                             f"random exposure and colour casts (gains {1 - c['cast']:.2f}-{1 + c['cast']:.2f})"))
    levels: float = option(0.0, "share of training images with each channel's levels stretched between random "
                                "percentiles, as an editor's auto levels does (0: none)",
                           recipe=lambda c: c["levels"] and (
                               f"random per-channel levels stretches on {c['levels']:.0%} of training images"))
    degrade: float = option(0.0, "share of training images, from every source, resized down to as little as 84 px on "
                                 "the long side and back up, so that detail cannot tell a low-resolution source's "
                                 "classes apart (0: none)",
                            recipe=lambda c: c["degrade"] and (
                                f"random down-and-up resolution degradation on {c['degrade']:.0%} of training images"))
    train_bn: bool = option(False, "phase 2 also trains batch norm (scales and statistics); default: ImageNet's, "
                                   "frozen")
    colour: str = option("none", "a first layer of the network: Shades of Gray colour constancy, grayscale + "
                                 "histogram equalisation, or none", choices=COLOUR_CHOICES)
    mix: str = option("none", "mix pairs of training images (CutMix: a box of one in the other; MixUp: a blend), "
                              "targets and class weights in the same proportion", choices=MIX)
    mix_share: float = option(0.5, "share of training images mixed when --mix is on",
                              recipe=lambda c: c["mix"] != "none" and (
                                  f"{MIX_NAMES[c['mix']]} on {c['mix_share']:.0%} of training images"))
    lesion_crop: float = option(0.0, "crop training images to windows holding the lesion box (lesion_boxes.csv) at "
                                     "a random zoom from this share of the image side to 1, cut from a 1.5x copy "
                                     "(0: random crops of 0.8-1 of the side)",
                                recipe=lambda c: c["lesion_crop"] and (
                                    f"crops around the lesion box at a random zoom of {c['lesion_crop']:.0%}-100% of "
                                    "the side (from a 1.5x copy)"))
    ema: float = option(0.0, "phase 2 keeps a moving average of the weights with this momentum, e.g. 0.998 (0: off)",
                        recipe=lambda c: c["ema"] and (
                            f"a moving average of the weights (momentum {c['ema']}) scored and kept"))
    average_from: int = option(0, "the run's model is the uniform average of phase 2's weights from this epoch to "
                                  "its last (stochastic weight averaging), not its best epoch on validation (0: off)",
                               recipe=lambda c: c["average_from"] and (
                                   f"the uniform average of fine-tuning epochs {c['average_from']} to the last "
                                   "(no epoch picked on validation)"))
    teacher: str = option("", "export folders whose mean probabilities are soft targets, per training image and "
                              "flip or, with --teach online, per augmented batch (A+B+C: an ensemble distilled into "
                              "this run); trained on the same split",
                          recipe=lambda c: c["teacher"] and (
                              f"distilled from the mean of {len(c['teacher'].split(ENSEMBLE_JOIN))} models' "
                              f"probabilities ({c['distill']:.0%} of the target; the rest the label)"))
    distill: float = option(0.5, "with --teacher: the teacher's share of the training target, the one-hot label "
                                 "the rest")
    teach: str = option("offline", "with --teacher: when it answers, once per training image and flip before "
                                   "training (offline), or for each batch as the student sees it, the same crop, "
                                   "colour and mix of two images (online: consistent teaching, each epoch runs the "
                                   "teacher's members too)",
                        choices=TEACH, recipe=lambda c: c.get("teacher") and c.get("teach") == "online" and (
                            "the teacher answering online for each augmented, mixed batch (consistent teaching)"))
    extra_target: str = option("label", "with --teacher and --extra or --bcn: what those sources' images learn, "
                                        "their label blended with the teacher's answer as HAM10000's do (label), or "
                                        "the teacher's answer alone, weighted by its expected class weight, with "
                                        "class weights from HAM10000's labels (teacher)",
                               choices=EXTRA_TARGETS, recipe=lambda c: c.get("extra_target") == "teacher" and (
                                   "the extra sources' images learn the teacher's answers alone (their labels unused)"))
    init: str = option("", "a finished run folder on the same split whose best weights start this run instead of "
                           "ImageNet's (e.g. with --teacher, --head-epochs 0 and a low --finetune-lr)",
                       recipe=lambda c: c.get("init") and f"started from the weights of {c['init']}")
    select: str = option("balanced_accuracy", "what keeps an epoch (and stops early) on validation: its balanced "
                                              "accuracy, or with --teacher its agreement with the teacher (the lowest "
                                              "mean KL divergence from the teacher's answers, which needs no label)",
                         choices=SELECT, recipe=lambda c: c.get("select") == "teacher" and (
                             "the epoch kept by its agreement with the teacher on validation (lowest KL divergence), "
                             "not by balanced accuracy"))
    keep_epochs: bool = option(False, "phase 2 also saves every epoch's weights (finetune.eNN.weights.h5), so a run's "
                                      "late epochs can be averaged with `python -m training soup`", compared=False)
    seed: int = option(0, "seed of the lesion-grouped split, the weights' initialisation and augmentation")
    # a recipe is judged over replicates on one split (docs/selection-rule.md): they differ only in this
    run_seed: int = option(-1, "seed of the weights' initialisation, the training order and augmentation, for a "
                               "replicate on the same split (-1: --seed)")
    extra: str | None = option(None, "ISIC 2017 folder (labels.csv, images/): its train part joins the training "
                                     "split; its validation and test parts are never read for training")
    bcn: str | None = option(None, "BCN20000 folder (labels.csv, images/): every image joins the training split "
                                   "(84x84: pair with --degrade)",
                             recipe=lambda c: c.get("bcn") and "BCN20000 (84x84) as extra training images")
    sampling: str = option("none", "how training images are drawn: each once an epoch (none), or balanced: a class "
                                   "uniformly, then a source uniformly among those holding it, as many draws an "
                                   "epoch as HAM10000 has training images (loss weights then unneeded)",
                           choices=SAMPLING, recipe=lambda c: c["sampling"] == "balanced" and (
                               "class-balanced sampling, sources equally often within each class, epochs of as "
                               "many draws as HAM10000's training images"))
    weights: str = option(str(IMAGENET_WEIGHTS), "ImageNet MobileNetV2 .h5 without top (or SKIN_IMAGENET_WEIGHTS)",
                          compared=False)
    limit: int | None = option(None, "use only N images, for smoke tests (default: all)")
    workers: int = option(4, "image decoding threads", compared=False)
    # model.metrics.RESAMPLES, written out: that module loads scikit-learn, which --help need not wait for
    resamples: int = option(1000, "lesion-bootstrap resamples behind the card's 95%% intervals (fewer: a quicker, "
                                  "rougher finish)", compared=False)
    strategy: str = option("none", "tf.distribute: mirrored (all local GPUs, else the logical CPUs) or multiworker "
                                   "(hosts from TF_CONFIG); --batch-size is the global batch (docs/scaling.md)",
                           choices=STRATEGIES)
    # set by ``python -m training soup`` (training/soup.py), not a flag: the runs whose weights were averaged
    soup: str = field(default="", metadata={"before": "", "compared": True, "recipe": lambda c: c.get("soup") and (
        f"the uniform average of the weights of {', '.join(c['soup'].split('+'))} (a model soup; a run's name "
        "stands for its best weights)")})
    command: str = field(default_factory=lambda: "python -m training " + shlex.join(sys.argv[1:]))

    @property
    def training_seed(self) -> int:
        """What seeds the weights, the order and the augmentation; the split always follows ``seed``."""
        return self.seed if self.run_seed < 0 else self.run_seed

    def __post_init__(self):
        if self.average_from < 0 or self.average_from > self.finetune_epochs:
            raise ValueError(f"--average-from is a fine-tuning epoch in 1-{self.finetune_epochs} (0: off), "
                             f"not {self.average_from}")
        if not 0 <= self.degrade <= 1:
            raise ValueError(f"--degrade is a share of training images in [0, 1], not {self.degrade}")
        if not 0 <= self.distill <= 1:
            raise ValueError(f"--distill is the teacher's share of the target in [0, 1], not {self.distill}")
        if self.select == "teacher" and not self.teacher:
            raise ValueError("--select teacher keeps the epoch closest to the teacher: it needs --teacher")
        if self.extra_target == "teacher" and not (self.teacher and (self.extra or self.bcn)):
            raise ValueError("--extra-target teacher gives the extra sources' images the teacher's answers: it needs "
                             "--teacher and --extra or --bcn")
        if self.teach == "online" and not self.teacher:
            raise ValueError("--teach online runs the teacher on each batch: it needs --teacher")
        if self.teach == "online" and self.extra_target == "teacher":
            raise ValueError("--teach online with --extra-target teacher is not supported: every image's target "
                             "blends the teacher's answer with its label by --distill")
        if self.extra_target == "teacher" and self.sampling == "balanced":
            raise ValueError("--extra-target teacher with --sampling balanced is not supported: the draw would "
                             "pick the extra images by the labels they do not learn")
        if not 0 <= self.lesion_crop <= 1:
            raise ValueError(f"--lesion-crop is a share of the image side in [0, 1], not {self.lesion_crop}")


def recipe_phrases(config: dict) -> list[str]:
    """The card's recipe sentence, one phrase per option that is on, from a run's config (old ones too)."""
    config = {**before_options(), **config}
    return [phrase for f in fields(Config) if f.metadata.get("recipe") and (phrase := f.metadata["recipe"](config))]


def compared_options() -> set[str]:
    """The options the recipe table compares runs on."""
    return {f.name for f in fields(Config) if f.metadata.get("compared", False)}


def before_options() -> dict:
    """What a run that predates each option did: the config an old run's missing keys are read from."""
    return {f.name: f.metadata["before"] for f in fields(Config) if "before" in f.metadata}


