"""The xlsa17 "Proposed Split v2" reader (PROTOCOL.md §1) — one reader for real and synthetic data.

A dataset directory ``<data_root>/<dataset>/`` holds

* ``att_splits.mat``: ``att`` / ``original_att`` [A, C], ``allclasses_names`` [C, 1] and the
  **1-based** split indices ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` (and usually
  ``train_loc`` / ``val_loc``; CUB copies that lack them are completed from ``sent_splits.mat``);
* the per-image list, either ``res101.mat`` (``labels`` [N, 1] 1-based, ``image_files`` [N, 1],
  optional ``features`` [2048, N]) or ``res101_meta.npz`` (0-based ``labels``, relative
  ``image_files``, 0-based locs);
* optionally attribute names (``attributes.txt``, ``predicates.txt`` or ``attributes.mat``) and
  ``attribute_groups.json``.

Everything is converted to 0-based int64 indices and global class ids. Image paths are cut at the
dataset's *anchor* (e.g. ``CUB_200_2011/images/``) and kept relative to an image root.

* :mod:`~zslbench.data.xlsa17.layout` — file and split names, expected counts, dataset names;
* :mod:`~zslbench.data.xlsa17.matfile` — MAT files read behind a check of their element tags;
* :mod:`~zslbench.data.xlsa17.paths` — image paths remapped by the dataset's anchor;
* :mod:`~zslbench.data.xlsa17.split` — :class:`SplitInfo`, one loaded dataset;
* :mod:`~zslbench.data.xlsa17.reading` — :func:`load_split`: read and validate a directory;
* :mod:`~zslbench.data.xlsa17.writing` — :func:`write_split_files`, the one writer (synth, tests).

Example:
    >>> remap_image_path("/BS/xian/work/data/CUB_200_2011/images/001.Black_footed_Albatross/a.jpg", "CUB")
    'CUB_200_2011/images/001.Black_footed_Albatross/a.jpg'
    >>> remap_image_path("Animals_with_Attributes2//JPEGImages/antelope/antelope_10001.jpg", "AWA2")
    'Animals_with_Attributes2/JPEGImages/antelope/antelope_10001.jpg'
"""

from zslbench.data.xlsa17.layout import (ATT_SPLITS, EXPECTED_COUNTS, GROUPS_FILE, KNOWN_DATASETS, NAME_FILES,
                                         NORM_EPS, REQUIRED_SPLITS, RES101, RES101_META, SENT_SPLITS, SPLITS,
                                         fetch_hint, is_synthetic, layout_name)
from zslbench.data.xlsa17.matfile import check_mat_elements
from zslbench.data.xlsa17.paths import ANCHORS, remap_image_path
from zslbench.data.xlsa17.reading import (dataset_directory, load_split, normalise_rows, read_attribute_groups,
                                          read_attribute_names)
from zslbench.data.xlsa17.split import SplitInfo
from zslbench.data.xlsa17.writing import savemat_deterministic, write_split_files

__all__ = ["ANCHORS", "ATT_SPLITS", "EXPECTED_COUNTS", "GROUPS_FILE", "KNOWN_DATASETS", "NAME_FILES", "NORM_EPS",
           "REQUIRED_SPLITS", "RES101", "RES101_META", "SENT_SPLITS", "SPLITS", "SplitInfo", "check_mat_elements",
           "dataset_directory", "fetch_hint", "is_synthetic", "layout_name", "load_split", "normalise_rows",
           "read_attribute_groups", "read_attribute_names", "remap_image_path", "savemat_deterministic",
           "write_split_files"]
