"""zslbench: a benchmark and ablation harness for attribute-based zero-shot learning.

The package is importable without torch or mlflow; heavy modules are imported lazily
by the commands that need them.
"""

__version__ = "0.1.0"

#: Version of the evaluation code (metrics, calibration, selection). Runs whose protocol
#: versions differ are never averaged together by ``zslbench.results``.
PROTOCOL_VERSION = "1"
