"""Backbones below the models: timm ViT and CNN builders, pretrained-weight loading, super-patch geometry.

* :mod:`zslbench.backbones.vit` — ViTs of any even-grid geometry, driven piecewise (SVIP, ``vit``);
* :mod:`zslbench.backbones.cnn` — any timm model as a region-feature extractor (TransZero, APN, the cache);

Importing this package stays light; torch and timm load with the submodules.
"""
