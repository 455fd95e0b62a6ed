"""What ``zslbench data fetch`` can fetch: each official archive, where it comes from and where its
members go under the data root — as data (:data:`SOURCES`).

>>> SOURCES["CUB"].filename, SOURCES["xlsa17"].datasets
('CUB_200_2011.tgz', ('CUB', 'AWA2', 'SUN'))
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One official archive and where its members go under the data root.

    ``layout`` rules are ``(path in the archive, path under the data root)``. A path ending in
    ``/`` is a folder (moved whole); otherwise a single file (copied, so that a file may also stay
    inside a moved folder). Members under no rule are not unpacked. When two rules fill the same
    destination, the first one present in the archive wins.
    """

    name: str
    url: str
    filename: str
    archive: str  # "zip" | "tar" (gzip-compressed here; any compression tarfile reads works)
    size: int | None  # bytes; None = unknown
    sha256: str | None
    md5: str | None
    layout: tuple[tuple[str, str], ...]
    datasets: tuple[str, ...]  # dataset folders to check afterwards
    holds: str  # "splits" | "images": what a later `data check` can still miss


#: The official sources (PROTOCOL.md §1). Sizes and checksums are listed only where known.
SOURCES: dict[str, Source] = {
    "xlsa17": Source(
        name="xlsa17", url="https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip", filename="xlsa17.zip",
        archive="zip", size=None, sha256=None, md5=None,
        layout=(("xlsa17/data/CUB/", "CUB/"), ("xlsa17/data/AWA1/", "AWA1/"), ("xlsa17/data/AWA2/", "AWA2/"),
                ("xlsa17/data/SUN/", "SUN/"), ("xlsa17/data/APY/", "APY/")),
        datasets=("CUB", "AWA2", "SUN"), holds="splits"),
    "CUB": Source(
        name="CUB", url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        filename="CUB_200_2011.tgz", archive="tar", size=1_150_585_339, sha256=None,
        md5="97eceeb196236b17998738112f37df78",
        # the tgz also carries the attribute names at its top level: the file `data embed` reads
        layout=(("CUB_200_2011/", "CUB/CUB_200_2011/"), ("attributes.txt", "CUB/attributes.txt")),
        datasets=("CUB",), holds="images"),
    "AWA2": Source(
        name="AWA2", url="https://cvml.ista.ac.at/AwA2/AwA2-data.zip", filename="AwA2-data.zip",
        archive="zip", size=None, sha256=None, md5=None,
        layout=(("Animals_with_Attributes2/predicates.txt", "AWA2/predicates.txt"),
                ("Animals_with_Attributes2/", "AWA2/Animals_with_Attributes2/")),
        datasets=("AWA2",), holds="images"),
    "SUN": Source(
        name="SUN", url="https://cs.brown.edu/~gmpatter/Attributes/SUNAttributeDB_Images.tar.gz",
        filename="SUNAttributeDB_Images.tar.gz", archive="tar", size=None, sha256=None, md5=None,
        layout=(("SUNAttributeDB_Images/images/", "SUN/images/"), ("images/", "SUN/images/")),
        datasets=("SUN",), holds="images"),
}

CHUNK_BYTES = 1 << 20
DOWNLOADS = ".downloads"
STAGING_PREFIX = ".fetch-"
USER_AGENT = "zslbench-fetch/1 (python urllib)"
