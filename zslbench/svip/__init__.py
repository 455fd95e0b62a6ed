"""SVIP (Chen et al., ICCV 2025) for zslbench: super-patches, attention rollout, patch selection,
semantic contextualisation (W2P), losses and the model (``zslbench.svip.model.SVIP``).

Importing this package registers SVIP in the catalogue — its config section, presets and ablations
(:mod:`zslbench.svip.entry`) and its search spaces (:mod:`zslbench.svip.spaces`) — and stays light:
torch and timm load with the model's modules. See SVIP.md for the method and its paper/reference switches.
"""

from zslbench.svip import entry, spaces  # noqa: F401  (registration)
