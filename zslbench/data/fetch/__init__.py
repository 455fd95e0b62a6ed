"""``zslbench data fetch``: download the official archives and unpack them safely (PROTOCOL.md §1).

What each archive holds and where it goes is data (:data:`SOURCES`). A fetch

1. downloads to ``<data root>/.downloads/<file>.part`` in chunks with a progress bar, resuming a
   partial file with an HTTP ``Range`` request (a server that ignores it answers 200 and the
   download restarts from byte 0; ``416`` means nothing is left, so the file is verified as is),
   retrying broken connections a bounded number of times with backoff;
2. verifies the size (against ``Content-Length`` too) and checksums that are known (or the ``--sha256``
   given); a mismatch deletes the download. Without a published checksum it says so, and the sha256
   computed here is recorded in ``<data root>/.fetched.json``;
3. unpacks into a temporary folder *inside* the data root, refusing members with absolute paths,
   ``..`` components, device or other special files; links are never created — one that leads (through
   the archive's other links) to a file in its own folder is unpacked as a copy, any other is refused.
   Compressed streams are read to their end (CRC), a tar must end with its end-of-archive marker, every
   member must hold the bytes the archive's index says, and the bytes unpacked are bounded
   (:class:`UnpackLimits`);
4. moves the dataset folders into place with renames (atomic on one file system), never through a link
   that leads out of the data root. Nothing is replaced unless ``force``: existing identical files are
   left alone (an identical re-fetch says so), and any other existing path makes the whole fetch stop
   before anything moves. A failed fetch leaves no half-unpacked dataset behind; the temporary folder is
   always removed, and so are the folders the fetch created (a partial download stays for resuming);
5. deletes the downloaded archive (kept with ``keep_archive``, and kept when the install was refused,
   so that the re-run with ``--force`` does not download it again);
6. runs ``data check`` on the datasets it touched (existence of images only, no decoding).

With ``force``, only the entries the archive brings are replaced; other files in a dataset folder
(e.g. images next to re-fetched split files) stay.

``--url`` may be ``http(s)://``, ``file://`` or a plain local path (used in place, never deleted),
which is the way to go on a machine without internet access.

* :mod:`~zslbench.data.fetch.sources` — the archives and their layout rules, as data;
* :mod:`~zslbench.data.fetch.download` — resumable, verified downloads;
* :mod:`~zslbench.data.fetch.archive` — safe unpacking into a staging folder (member checks and limits in
  :mod:`~zslbench.data.fetch.members`, tar streams read to their end in :mod:`~zslbench.data.fetch.streams`);
* :mod:`~zslbench.data.fetch.install` — renames into the data root, nothing replaced unless ``force``;
* :mod:`~zslbench.data.fetch.command` — :func:`fetch`: the steps above, then ``data check``.

Example (not run here: it downloads):
    fetch("xlsa17", Path("~/zsl").expanduser())  # → ~/zsl/CUB/att_splits.mat, ~/zsl/AWA2/..., ~/zsl/SUN/...
"""

from zslbench.data.fetch.archive import DamagedArchive, UnpackLimits, unpack
from zslbench.data.fetch.command import FetchResult, check_fetched, fetch, local_path
from zslbench.data.fetch.download import download, file_sha256, verify_file
from zslbench.data.fetch.install import install
from zslbench.data.fetch.sources import CHUNK_BYTES, DOWNLOADS, SOURCES, STAGING_PREFIX, USER_AGENT, Source

__all__ = ["CHUNK_BYTES", "DOWNLOADS", "DamagedArchive", "FetchResult", "SOURCES", "STAGING_PREFIX", "Source",
           "USER_AGENT", "UnpackLimits", "check_fetched", "download", "fetch", "file_sha256", "install", "local_path",
           "unpack", "verify_file"]
