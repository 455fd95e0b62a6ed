"""SVIP (Chen et al., ICCV 2025) for zslbench: super-patches, attention rollout, patch selection,
semantic contextualisation (W2P), losses and the model (``zslbench.svip.model.SVIP``, registered as
``svip``). See SVIP.md for the method and its paper/reference switches.

Importing this package stays light; torch and timm load with the submodules.
"""
