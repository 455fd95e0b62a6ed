"""zslbench: a benchmark and ablation harness for attribute-based zero-shot learning.

The package is importable without torch or mlflow; heavy modules are imported lazily
by the commands that need them.
"""

from zslbench.core.version import PROTOCOL_VERSION, __version__

__all__ = ["PROTOCOL_VERSION", "__version__"]
