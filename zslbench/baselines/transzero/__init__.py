"""The TransZero-style baseline (BASELINES.md §2); importing the package registers it (:mod:`.entry`)."""

from zslbench.baselines.transzero import entry  # noqa: F401  (registration)
