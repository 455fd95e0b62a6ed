"""zslbench: a benchmark and ablation harness for attribute-based zero-shot learning.

Importing the package registers every model in the catalogue (:mod:`zslbench.catalogue`): SVIP and each
baseline package declare themselves there, torch-free, as timm's ``timm.models`` does. The package is
importable without torch or mlflow; heavy modules are imported lazily by the commands that need them.
"""

from zslbench.core.version import PROTOCOL_VERSION, __version__
from zslbench import baselines, svip  # noqa: E402,F401  (registration of the model packages)

__all__ = ["PROTOCOL_VERSION", "__version__"]
