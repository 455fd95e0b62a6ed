"""The ViT baseline (BASELINES.md §1); importing the package registers it (:mod:`.entry`)."""

from zslbench.baselines.vit import entry  # noqa: F401  (registration)
