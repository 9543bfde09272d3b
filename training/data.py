"""HAM10000 in this repo's terms: metadata, a lesion-grouped split, and images as arrays.

Several images show the same lesion, so every split is made over lesion_id: no lesion has
images in two splits, otherwise validation and test figures would be inflated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from model.labels import CLASSES
from model.preprocessing import load_image, resize

SPLITS = ("train", "val", "test")
HAM_SOURCE = "ham10000"  # the `source` of HAM10000's rows in a run's split.csv; extra sources have their own


def read_metadata(data_dir: str | Path) -> pd.DataFrame:
    """HAM10000_metadata.csv with a ``path`` column, keeping rows whose image exists."""
    data_dir = Path(data_dir)
    meta = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    missing = {"lesion_id", "image_id", "dx"} - set(meta.columns)
    if missing:
        raise ValueError(f"{data_dir / 'HAM10000_metadata.csv'} lacks columns {sorted(missing)}")
    unknown = set(meta.dx) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown diagnoses in metadata: {sorted(unknown)}")
    meta["path"] = [str(data_dir / "images" / f"{i}.jpg") for i in meta.image_id]
    exists = np.array([Path(p).is_file() for p in meta.path])
    if not exists.any():
        raise FileNotFoundError(f"no images of the metadata found under {data_dir / 'images'}")
    meta = meta[exists].drop_duplicates("image_id").reset_index(drop=True)
    meta["label"] = meta.dx.map(CLASSES.index).astype(int)
    return meta


def split_by_lesion(
    meta: pd.DataFrame, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Add a ``split`` column: lesions (not images) are drawn, stratified by diagnosis."""
    lesions = meta.groupby("lesion_id").dx.agg(lambda d: d.mode().iloc[0]).reset_index()
    stratify = lesions.dx if lesions.dx.value_counts().min() >= 3 else None
    rest, test_ids = train_test_split(
        lesions, test_size=test, stratify=stratify, random_state=seed
    )
    rest_stratify = rest.dx if stratify is not None else None
    train_ids, val_ids = train_test_split(
        rest, test_size=val / (1 - test), stratify=rest_stratify, random_state=seed
    )
    split_of = {
        **dict.fromkeys(train_ids.lesion_id, "train"),
        **dict.fromkeys(val_ids.lesion_id, "val"),
        **dict.fromkeys(test_ids.lesion_id, "test"),
    }
    out = meta.copy()
    out["split"] = out.lesion_id.map(split_of)
    return out


def read_split(data_dir: str | Path, seed: int = 0, limit: int | None = None) -> pd.DataFrame:
    """The metadata (``limit``: a random subset, for smoke tests) with its lesion-grouped split."""
    meta = read_metadata(data_dir)
    if limit:
        meta = meta.sample(n=min(limit, len(meta)), random_state=seed).reset_index(drop=True)
    return split_by_lesion(meta, seed=seed)


def card_split(card: dict, data_dir: str | Path, seed: int = 0) -> pd.DataFrame:
    """The split an exported model was trained on, rebuilt from the data and the seed.

    For a model whose run folder is gone (the shipped one); it must give the card's image counts.
    """
    meta = read_split(data_dir, seed=seed)
    counts = {name: int((meta.split == name).sum()) for name in card["data"]["images"]}
    if counts != card["data"]["images"]:
        raise ValueError(f"split of {data_dir} with seed {seed} has {counts} images, the card {card['data']['images']}")
    return meta


def load_split_file(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


ISIC2017_TRAINABLE = "train"  # the challenge's own train part; its validation and test parts are external validation


def _extra_rows(data_dir: Path, columns: set[str], keep=None) -> pd.DataFrame:
    """An extra source's ``labels.csv`` (rows ``keep`` selects) with the path of each image found."""
    table = pd.read_csv(data_dir / "labels.csv")
    missing = columns - set(table.columns)
    if missing:
        raise ValueError(f"{data_dir / 'labels.csv'} lacks columns {sorted(missing)}")
    table = (table[keep(table)] if keep else table).reset_index(drop=True)
    unknown = set(table.dx) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown diagnoses in {data_dir / 'labels.csv'}: {sorted(unknown)}")
    table["path"] = [str(data_dir / "images" / f"{i}.jpg") for i in table.image_id]
    table = table[[Path(p).is_file() for p in table.path]]
    if table.empty:
        raise FileNotFoundError(f"no training images of {data_dir / 'labels.csv'} found under {data_dir / 'images'}")
    return table


def _training_rows(table: pd.DataFrame, lesion_ids, source: str) -> pd.DataFrame:
    """HAM10000-style rows of the training split, from an extra source."""
    return pd.DataFrame({
        "lesion_id": lesion_ids, "image_id": table.image_id.to_numpy(), "dx": table.dx.to_numpy(),
        "path": table.path.to_numpy(), "label": table.dx.map(CLASSES.index).astype(int).to_numpy(),
        "split": "train", "source": source,
    })


def read_isic2017_train(data_dir: str | Path) -> pd.DataFrame:
    """The ISIC 2017 challenge's train part (mel, nv, bkl) as extra training rows, HAM10000-style.

    Only the ``train`` part is ever read here: the validation and test parts are kept for
    external validation (training/external.py). ISIC 2017 has no lesion ids, so each image is
    its own lesion; the rows join the training split only, so no split is made over them.
    """
    table = _extra_rows(Path(data_dir), {"image_id", "dx", "isic2017_split"},
                        keep=lambda t: t.isic2017_split == ISIC2017_TRAINABLE)
    return _training_rows(table, ("ISIC2017_" + table.image_id).to_numpy(), "isic2017")


def read_bcn_train(data_dir: str | Path) -> pd.DataFrame:
    """BCN20000 (the ISIC 2019 part from Barcelona) as extra training rows, HAM10000-style, grouped by its lesion ids.

    Every image joins the training split: none of them is in HAM10000 or the ISIC 2018 test set. The
    copy is 84x84, so a run using it should degrade every source's resolution alike (``--degrade``).
    """
    table = _extra_rows(Path(data_dir), {"image_id", "dx", "lesion_id"})
    return _training_rows(table, table.lesion_id.to_numpy(), "bcn20000")


# each extra training source: how the card names it, and what to cite
EXTRA_SOURCES = {
    "isic2017": ("ISIC 2017 challenge, train part only (Codella et al., ISBI 2018)",
                 "Codella, N. et al. Skin lesion analysis toward melanoma detection: a challenge at ISBI 2017,\n"
                 "arXiv:1710.05006 (ISIC Archive, CC-0 / CC BY-NC per image)."),
    "bcn20000": ("BCN20000 at 84x84 (Combalia et al. 2019)",
                 "Combalia, M. et al. BCN20000: Dermoscopic lesions in the wild, arXiv:1908.02288\n"
                 "(ISIC Archive, CC BY-NC 4.0)."),
}


def load_arrays(
    paths: list[str], size: tuple[int, int], workers: int = 4, desc: str = "images"
) -> np.ndarray:
    """Decode and resize images with the serving code into one uint8 (N, H, W, 3) array."""
    out = np.empty((len(paths), *size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = resize(load_image(paths[i]), size)

    with ThreadPoolExecutor(workers) as pool:
        list(tqdm(pool.map(one, range(len(paths))), total=len(paths), desc=desc, mininterval=2))
    return out
