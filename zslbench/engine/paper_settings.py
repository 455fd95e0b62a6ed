"""What ``run --dry-run`` says of a model's reference: the training loop a run uses, and how the model's paper
reported its numbers (which ``eval.mode``, which configuration each number came from) — so the reference
settings, and the one flag that reports as the paper did, are visible before anything runs.

>>> import zslbench
>>> from zslbench.config import resolve
>>> lines = describe_reference(resolve("apn", "CUB", "paper"))
>>> lines["training loop"]
'reference (train.quirks=reference): a new optimizer at every epoch of both phases'
>>> print(lines["paper reporting"])  # doctest: +ELLIPSIS
APN's published numbers: eval.mode=apn ...; T1 from its ZSL configuration (--preset paper-zsl), U/S/H from this one (--preset paper) — add --set eval.mode=apn to report as it did (test-selected †)
"""

from __future__ import annotations

from zslbench.catalogue import CLEAN_LOOP, model_entry
from zslbench.config import Config
from zslbench.engine.sampling import training_loop
from zslbench.metrics.paper import MODE_SUMMARIES


def describe_reference(cfg: Config) -> dict[str, str]:
    """``training loop`` and, for a model with a paper mode, ``paper reporting`` (one line each)."""
    entry = model_entry(cfg.model.name)
    loop = training_loop(cfg)
    if entry.reference_loop == CLEAN_LOOP:
        lines = {"training loop": "clean, which is also the reference code's loop (train.quirks changes nothing)"}
    elif cfg.train.quirks == "reference":
        lines = {"training loop": f"reference (train.quirks=reference): {loop.describe()}"}
    else:
        lines = {"training loop": f"clean (train.quirks=clean); the reference's: {entry.reference_loop.describe()}"}
    mode = entry.paper_mode
    if not mode:
        return lines
    text = f"{entry.display_name}'s published numbers: eval.mode={mode} ({MODE_SUMMARIES[mode]})"
    if cfg.data.dataset in entry.zsl_presets:  # the reference trained its ZSL and GZSL numbers separately
        if cfg.preset == "paper-zsl":
            text += "; T1 from this configuration (its ZSL one), U/S/H from its GZSL configuration (--preset paper)"
        else:
            text += "; T1 from its ZSL configuration (--preset paper-zsl), U/S/H from this one (--preset paper)"
    if cfg.eval.mode == mode:
        text += " — this run reports as it did (test-selected †)"
    else:
        text += f" — add --set eval.mode={mode} to report as it did (test-selected †)"
    lines["paper reporting"] = text
    return lines
