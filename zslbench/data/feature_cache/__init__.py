"""Region features of a frozen backbone, extracted once into a float16 cache file.

Frozen-backbone models (``input_kind = "features"``, e.g. ``transzero``) never see images during
training: :func:`ensure_feature_cache` runs the backbone once over every image of the dataset and
stores the last feature map of each as ``[R, C]`` region vectors in ``features.npy`` — a ``.npy``
file of shape ``[N, R, C]``, float16 — next to a ``meta.json``. The engine reads it batch by batch
(:mod:`zslbench.engine.feature_batches`).

* :mod:`~zslbench.data.feature_cache.key` — what is cached (:class:`ExtractorSpec`, the extraction
  transform), the key, and where caches live;
* :mod:`~zslbench.data.feature_cache.building` — extraction with the backbone, built beside its
  final place and renamed into place;
* :mod:`~zslbench.data.feature_cache.reading` — a complete cache (:class:`FeatureCache`): rows
  read with positional reads, never the whole file mapped.

Where: ``<dataset dir>/.cache/features/<key>/``; when the dataset directory is not writable,
``$ZSLBENCH_CACHE/features/<key>/`` (default ``~/.cache/zslbench``).

Key: a hash of everything that changes the numbers — the backbone name and output stride, its
weights (``sha256`` of the weights file, ``random:<seed>`` or the hub tag), the transform
description, the input size, the extraction precision (fp32, or bf16 autocast), and the image list
with its labels (plus the synthetic generator's version and seed) — so runs, seeds and sweeps share
one cache, and any change builds a new one.

Under ``torchrun`` the processes build one cache together: each extracts its share of the images
into the same file (see :func:`~zslbench.data.feature_cache.building.ensure_feature_cache`).
Images replaced in place under the same file names are not detected: delete the cache folder.

>>> cache_key({"backbone": "resnet18"}) == cache_key({"backbone": "resnet18"})
True
"""

from zslbench.data.feature_cache.building import Extractor, ensure_feature_cache
from zslbench.data.feature_cache.key import (CACHE_VERSION, FEATURES_FILE, META_FILE, ExtractorSpec, cache_fields,
                                             cache_key, cache_root, extraction_transform, image_list_fingerprint)
from zslbench.data.feature_cache.reading import FeatureCache, is_complete, open_cache

__all__ = ["CACHE_VERSION", "FEATURES_FILE", "META_FILE", "Extractor", "ExtractorSpec", "FeatureCache",
           "cache_fields", "cache_key", "cache_root", "ensure_feature_cache", "extraction_transform",
           "image_list_fingerprint", "is_complete", "open_cache"]
