"""The package version and the evaluation-protocol version (re-exported by ``zslbench``)."""

__version__ = "0.1.0"

#: Version of the evaluation code (metrics, calibration, selection). Runs whose protocol
#: versions differ are never averaged together by ``zslbench.results``.
#: 1: first release. 2: ``oracle`` epoch selection reports T1 from the best-T1 epoch (it took the best-H
#: epoch's), as PROTOCOL.md §3 says; runs store every epoch's decisions (paper modes).
PROTOCOL_VERSION = "2"
