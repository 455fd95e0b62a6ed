"""The dataset side of a run: its split, the model-facing dataset info, where images and masks live.

:func:`load_run_data` reads the dataset the config names (generating the synthetic benchmark on
first use) and attaches its word vectors; the batch sources (:mod:`zslbench.engine.batches`) then
read images or cached features through the :class:`RunData` it returns.

Example (the synthetic benchmark needs no download)::

    >>> import tempfile
    >>> from zslbench.config import resolve
    >>> cfg = resolve("svip", "synth", "tiny", overrides=[f"data.root={tempfile.mkdtemp()}"])
    >>> data = load_run_data(cfg)
    >>> data.info.name, data.image_size, data.masks_dir.name
    ('synth', 32, 'masks')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zslbench.catalogue import MODELS, DatasetInfo
from zslbench.config import Config, default_data_root


@dataclass
class RunData:
    """The dataset side of a run."""

    split: Any  # zslbench.data.xlsa17.SplitInfo
    info: DatasetInfo
    image_root: Path
    image_size: int
    masks_dir: Path | None = None  # synth part masks, for the patch-selection metric
    extra: dict[str, Any] = field(default_factory=dict)  # per-run caches of the batch sources


def dataset_directory(cfg: Config, console=None) -> tuple[str, Path]:
    """(dataset folder name, data root); generates the synthetic benchmark on first use."""
    root = Path(cfg.data.root or default_data_root())
    if cfg.data.dataset != "synth":
        return cfg.data.dataset, root
    from zslbench.data.synth import ensure_synth

    directory = ensure_synth(root, preset=cfg.data.synth_preset, seed=cfg.data.synth_seed, console=console)
    return directory.name, directory.parent


def image_size_of(cfg: Config) -> int:
    return cfg.data.image_size or cfg.model.img_size


def load_run_data(cfg: Config, console=None) -> RunData:
    """The split, dataset info (with word vectors), image root and synth masks of ``cfg``'s dataset."""
    from zslbench.data.wordvec import load_word_vectors
    from zslbench.data.xlsa17 import load_split

    name, root = dataset_directory(cfg, console)
    split = load_split(name, root, cfg.data.image_root or None)
    word_vectors = load_word_vectors(cfg.data.word_vectors, split, seed=cfg.train.seed)
    # the config's dataset name ("synth"), not the folder's ("synth-tiny"): models key on it
    info = split.dataset_info(word_vectors, name=cfg.data.dataset)
    image_root = Path(cfg.data.image_root) if cfg.data.image_root else Path(split.directory)
    if MODELS.get(cfg.model.name).input_kind == "image":
        check_images(cfg, split, image_root)
    masks = Path(split.directory) / "masks"
    return RunData(split, info, image_root, image_size_of(cfg), masks if masks.is_dir() else None)


def check_images(cfg: Config, split: Any, image_root: Path) -> None:
    """Every image a split uses exists under ``image_root`` — checked before any run or folder is created, so
    a run missing images fails in one line and leaves nothing behind (not a KILLED run after minutes)."""
    import os

    from zslbench.core.errors import UserError
    from zslbench.data.inspect import missing_images, split_images

    paths = [os.path.join(str(image_root), split.image_files[int(i)]) for i in split_images(split)]
    missing = missing_images(paths)
    if not missing:
        return
    root = cfg.data.root or default_data_root()
    fetch = ("regenerate it with `zslbench data synth`" if cfg.data.dataset == "synth" else
             f"fetch them with `zslbench data fetch {cfg.data.dataset} --data-root {root}` or point --image-root at "
             "the folder that holds them")
    raise UserError(f"{len(missing):,} of {len(paths):,} images of {cfg.data.dataset} are missing under {image_root} "
                    f"(e.g. {os.path.relpath(missing[0], image_root)}); {fetch}; `zslbench data check --dataset "
                    f"{cfg.data.dataset}` lists every one")


#: At most this many loader workers per process by default (JPEG decoding scales about linearly with cores).
MAX_AUTO_WORKERS = 8


def loader_workers(configured: int, num_images: int | None = None) -> int:
    """``data.num_workers``: ``-1`` (the default) is one worker per CPU core of this process's share of the
    machine (the cores it may run on, divided among the ranks on it, ``$LOCAL_WORLD_SIZE``), up to
    :data:`MAX_AUTO_WORKERS`, and none for fewer than 2,000 images (starting workers costs more than it saves);
    ``0`` decodes in the main process; a positive number is used as given.

    >>> loader_workers(3), loader_workers(0), loader_workers(-1, num_images=100)
    (3, 0, 0)
    """
    if configured >= 0:
        return configured
    if num_images is not None and num_images < 2000:
        return 0
    ranks_here = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return min(MAX_AUTO_WORKERS, max(1, usable_cores() // ranks_here))


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (a SLURM job or a
    container pinned to some cores of a large node), else every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
