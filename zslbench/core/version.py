"""The package version and the evaluation-protocol version (re-exported by ``zslbench``)."""

__version__ = "0.1.0"

#: Version of the evaluation code (metrics, calibration, selection). Runs whose protocol
#: versions differ are never averaged together by ``zslbench.results``.
PROTOCOL_VERSION = "1"
