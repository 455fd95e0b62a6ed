"""What a feature cache holds and where it lives: the extractor, its key, the cache folder.

The key is a hash of everything that changes the numbers (see :func:`cache_fields`), so runs,
seeds and sweeps share one cache and any change builds a new one beside it.

>>> ExtractorSpec("resnet10t", img_size=32).weights_id()
'random:0'
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.core.errors import DataError
from zslbench.core.files import require_inside

CACHE_VERSION = 1
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ExtractorSpec:
    """The frozen backbone whose features are cached (the model config's *extractor* fields)."""

    backbone: str
    pretrained: str = "none"  # model.pretrained (zslbench.backbones.weights); none = random init from ``seed``
    seed: int = 0
    img_size: int = 448
    output_stride: int = 0
    paper_tag: str = ""  # what pretrained=paper means for the model

    @classmethod
    def from_model_config(cls, model_cfg: Any, img_size: int | None = None) -> "ExtractorSpec":
        return cls(backbone=model_cfg.backbone, pretrained=model_cfg.pretrained,
                   seed=int(getattr(model_cfg, "backbone_seed", 0)), img_size=int(img_size or model_cfg.img_size),
                   output_stride=int(model_cfg.output_stride), paper_tag=model_cfg.paper_weights)

    def weights_id(self) -> str:
        from zslbench.backbones.cnn import weights_identity

        return weights_identity(self.pretrained, self.backbone, self.seed, self.paper_tag)

    def build(self):
        """The backbone, in eval mode (its weights are what :meth:`weights_id` names)."""
        from zslbench.backbones.cnn import create_backbone

        return create_backbone(self.backbone, self.pretrained, img_size=self.img_size,
                               output_stride=self.output_stride, seed=self.seed, paper_tag=self.paper_tag).eval()


def extraction_transform(dataset: str, size: int):
    """The fixed (augmentation-free) transform of the cached images and its description.

    Real datasets: Resize(s) (shorter side) → CenterCrop(s), as TransZero at s = 448; synthetic
    images are generated square, so only a resize when the size differs. Then ImageNet mean/std.
    """
    from torchvision import transforms as T

    from zslbench.data.images import IMAGENET_MEAN, IMAGENET_STD, _ResizeIfNeeded
    from zslbench.data.xlsa17 import is_synthetic

    steps = [_ResizeIfNeeded(size)] if is_synthetic(dataset) else [T.Resize(size), T.CenterCrop(size)]
    transform = T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return transform, repr(transform)


def image_list_fingerprint(split: Any) -> str:
    """sha256 over the image paths and labels (and the synthetic generator's identity when present)."""
    digest = hashlib.sha256()
    digest.update("\n".join(split.image_files).encode())
    digest.update(np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
    synth_meta = Path(split.directory) / "synth_meta.json"
    if synth_meta.is_file():  # regenerated images keep their names: the generator identity tells them apart
        try:
            meta = json.loads(synth_meta.read_text())
            digest.update(json.dumps({k: meta.get(k) for k in ("version", "preset", "seed", "params")},
                                     sort_keys=True).encode())
        except (OSError, ValueError):
            pass
    return digest.hexdigest()


def cache_fields(spec: ExtractorSpec, transform_description: str, split: Any,
                 precision: str = "fp32") -> dict[str, Any]:
    """Every input of the cache key, as stored in ``meta.json``; ``precision`` is the extraction's
    (``fp32``, or ``bf16`` autocast: different numbers, so a different cache)."""
    return {
        "version": CACHE_VERSION,
        "backbone": spec.backbone,
        "weights": spec.weights_id(),
        "output_stride": spec.output_stride,
        "input_size": spec.img_size,
        "transform": transform_description,
        "images": image_list_fingerprint(split),
        "num_images": int(split.num_images),
        "dtype": "float16",
        "precision": precision,
    }


def cache_key(fields: dict[str, Any]) -> str:
    """A short stable hash of :func:`cache_fields`.

    >>> len(cache_key({"backbone": "resnet18"}))
    20
    """
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def cache_root(dataset_dir: str | Path) -> Path:
    """``<dataset dir>/.cache/features``, or ``$ZSLBENCH_CACHE`` (``~/.cache/zslbench``) ``/features``."""
    preferred = Path(dataset_dir) / ".cache" / "features"
    require_inside(dataset_dir, preferred, "the feature cache folder")  # a planted link must not redirect writes
    if _writable(preferred):
        return preferred
    fallback = Path(os.environ.get("ZSLBENCH_CACHE") or Path.home() / ".cache" / "zslbench").expanduser() / "features"
    if _writable(fallback):
        return fallback
    raise DataError(f"no writable place for the feature cache ({preferred} and {fallback} are read-only); "
                    "set $ZSLBENCH_CACHE to a writable folder")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)
