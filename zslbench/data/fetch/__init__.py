"""``zslbench data fetch``: download the official archives and unpack them safely (PROTOCOL.md §1).

What each archive holds and where it goes is data (:data:`SOURCES`). A fetch

1. downloads to ``<data root>/.downloads/<file>.part`` in chunks with a progress bar, resuming a
   partial file with an HTTP ``Range`` request (a server that ignores it answers 200 and the
   download restarts from byte 0; ``416`` means nothing is left, so the file is verified as is),
   retrying broken connections a bounded number of times with backoff;
2. verifies the size and checksums that are known (or the ``--sha256`` given); a mismatch deletes
   the download;
3. unpacks into a temporary folder *inside* the data root, refusing members with absolute paths,
   ``..`` components, links that point outside their folder, and device or other special files;
4. moves the dataset folders into place with renames (atomic on one file system). Nothing is
   replaced unless ``force``: existing identical files are left alone, and any other existing path
   makes the whole fetch stop before anything moves. A failed fetch leaves no half-unpacked
   dataset behind; the temporary folder is always removed;
5. deletes the downloaded archive (kept with ``keep_archive``, and kept when the install was refused,
   so that the re-run with ``--force`` does not download it again);
6. runs ``data check`` on the datasets it touched (existence of images only, no decoding).

With ``force``, only the entries the archive brings are replaced; other files in a dataset folder
(e.g. images next to re-fetched split files) stay.

``--url`` may be ``http(s)://``, ``file://`` or a plain local path (used in place, never deleted),
which is the way to go on a machine without internet access.

* :mod:`~zslbench.data.fetch.sources` — the archives and their layout rules, as data;
* :mod:`~zslbench.data.fetch.download` — resumable, verified downloads;
* :mod:`~zslbench.data.fetch.archive` — safe unpacking into a staging folder;
* :mod:`~zslbench.data.fetch.install` — renames into the data root, nothing replaced unless ``force``;
* :mod:`~zslbench.data.fetch.command` — :func:`fetch`: the steps above, then ``data check``.

Example (not run here: it downloads):
    fetch("xlsa17", Path("~/zsl").expanduser())  # → ~/zsl/CUB/att_splits.mat, ~/zsl/AWA2/..., ~/zsl/SUN/...
"""

from zslbench.data.fetch.archive import DamagedArchive, unpack
from zslbench.data.fetch.command import FetchResult, check_fetched, fetch, local_path
from zslbench.data.fetch.download import download, verify_file
from zslbench.data.fetch.install import install
from zslbench.data.fetch.sources import CHUNK_BYTES, DOWNLOADS, SOURCES, STAGING_PREFIX, USER_AGENT, Source

__all__ = ["CHUNK_BYTES", "DOWNLOADS", "DamagedArchive", "FetchResult", "SOURCES", "STAGING_PREFIX", "Source",
           "USER_AGENT", "check_fetched", "download", "fetch", "install", "local_path", "unpack", "verify_file"]
