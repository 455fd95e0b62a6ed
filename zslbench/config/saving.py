"""A resolved config as it is saved (``runs/<id>/resolved.yaml``, the run's artifact) or shown (``--dry-run``):
YAML with every credential masked, and — when one was — a note at the top on how to supply it at run time.

>>> from zslbench.config import resolve
>>> text = saved_yaml(resolve(overrides=["track.uri=http://me:hunter2@mlflow:5000"]))
>>> "hunter2" in text, "uri: http://me:***@mlflow:5000" in text, text.startswith(MASKED_CONFIG_NOTE)
(False, True, True)
"""

from __future__ import annotations

import yaml

from zslbench.config.sections import Config
from zslbench.core.secrets import MASKED_CONFIG_NOTE, has_masked_credentials, mask_object


def saved_yaml(cfg: Config) -> str:
    """``cfg`` as YAML with its secrets masked (:func:`~zslbench.core.secrets.mask_object`); ``Config.from_yaml``
    reads it back, and the tracking URI gets its credentials from the environment then
    (:func:`zslbench.tracking.store.with_credentials`)."""
    data = cfg.to_dict()
    masked = mask_object(data)
    text = yaml.safe_dump(masked, sort_keys=False)
    # masked here, or read back from a file saved masked (a resumed run, the processes of --nproc)
    return MASKED_CONFIG_NOTE + text if masked != data or has_masked_credentials(text) else text


__all__ = ["MASKED_CONFIG_NOTE", "saved_yaml"]
