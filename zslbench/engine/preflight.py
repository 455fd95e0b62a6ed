"""What a run settles before anything is created (no MLflow run, no run folder): the weights its backbone
starts from are on this machine (downloaded when published and the machine is online), and the fidelity it
will record — weights source, precision, word vectors — as tags that tables use to keep incomparable runs apart.

>>> import torch
>>> from zslbench.config import resolve
>>> fidelity_tags(resolve("svip", "CUB"), torch.device("cpu"))
{'zslbench.weights': 'paper: timm vit_base_patch16_224.orig_in21k_ft_in1k (ViT-B/16 pre-trained on ImageNet-21k, fine-tuned on ImageNet-1k: the original weights of Dosovitskiy et al.)', 'zslbench.precision': 'fp32', 'zslbench.random_init': 'false'}
"""

from __future__ import annotations

from typing import Any

import torch

from zslbench.backbones.config import PretrainedBackbone
from zslbench.backbones.weights import WeightsSpec, describe, parse
from zslbench.config import Config
from zslbench.engine.device import precision_name

WEIGHTS_TAG, PRECISION_TAG, RANDOM_INIT_TAG = "zslbench.weights", "zslbench.precision", "zslbench.random_init"
WORD_VECTORS_TAG = "zslbench.word_vectors"


def weights_spec(cfg: Config) -> WeightsSpec | None:
    """The parsed ``model.pretrained`` (``None`` for a model without a pretrained backbone)."""
    model = cfg.model
    if not isinstance(model, PretrainedBackbone):
        return None
    return parse(model.pretrained, model.paper_weights, model.backbone)


def prepare_run(cfg: Config, console: Any = None):
    """Everything a run checks before the tracking store or a run folder is touched: its data (generated on
    first use for synth; split files, images list, word vectors checked) and its weights. Returns the
    :class:`~zslbench.engine.run_data.RunData`."""
    from zslbench.engine import distributed
    from zslbench.engine.run_data import load_run_data

    data = distributed.on_main_first(lambda: load_run_data(cfg, console))
    distributed.on_main_first(lambda: prepare_weights(cfg, console))
    return data


def seed_dependent_data(cfg: Config) -> bool:
    """Whether the run data differ by seed (random word vectors are drawn from the seed)."""
    return str(cfg.data.word_vectors).strip() == "random"


def prepare_weights(cfg: Config, console: Any = None) -> None:
    """Make sure the weights ``model.pretrained`` names are on this machine; else one line saying how to get them."""
    spec = weights_spec(cfg)
    if spec is None:
        return
    from zslbench.data.fetch.files import ensure_weights

    ensure_weights(spec, console)


def fidelity_tags(cfg: Config, device: torch.device, split: Any = None) -> dict[str, str]:
    """Where the weights come from, the precision, whether the backbone starts from random init, and (given
    the run's split) which attribute word vectors it uses."""
    spec = weights_spec(cfg)
    random_init = spec is None or spec.kind == "none"
    tags = {WEIGHTS_TAG: describe(spec) if spec is not None else "random init (no pretrained backbone)",
            PRECISION_TAG: precision_name(device, cfg.train.amp),
            RANDOM_INIT_TAG: "true" if random_init else "false"}
    if split is not None:
        from zslbench.data.wordvec import describe_source

        tags[WORD_VECTORS_TAG] = describe_source(cfg.data.word_vectors, split)
    return tags


def describe_fidelity(cfg: Config) -> dict[str, str]:
    """What ``run --dry-run`` says of the weights, the precision, the training loop and the paper's reporting
    (no file is looked for, nothing fetched)."""
    from zslbench.engine.paper_settings import describe_reference

    spec = weights_spec(cfg)
    weights = describe(spec) if spec is not None else "random init (no pretrained backbone)"
    amp = cfg.train.amp
    precision = {"off": "fp32 (TF32 off)", "bf16": "bf16 autocast",
                 "auto": "bf16 autocast on CUDA, fp32 on CPU"}[amp] + f" (train.amp={amp})"
    return {"weights": weights, "precision": precision, **describe_reference(cfg)}
