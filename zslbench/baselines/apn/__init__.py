"""The APN-style baseline (BASELINES.md §3); importing the package registers it (:mod:`.entry`)."""

from zslbench.baselines.apn import entry  # noqa: F401  (registration)
