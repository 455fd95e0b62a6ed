"""Pretrained weights as data, and where a weights spec resolves to (torch-free).

``model.pretrained`` says which weights a backbone starts from:

* ``none`` — random initialisation (``""`` is read as ``none``, as configs saved before said);
* ``paper`` — the weights the model's reference implementation loads (its config class names them:
  ``paper_weights``, a timm tag such as ``vit_base_patch16_224.orig_in21k_ft_in1k``);
* ``timm:<tag>`` — any timm pretrained tag;
* ``hub`` — timm's default tag of ``model.backbone``, downloaded by timm itself;
* a path to a state dict (``.pth``/``.pt``/``.bin``) or ``.safetensors`` file.

A timm tag resolves to a file in the hub caches — Hugging Face's (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)
where timm's own downloads go, then torch's (``$TORCH_HOME/hub/checkpoints``) where the published files of
:data:`PUBLISHED` go, named as published (their names carry a sha256 prefix, checked on download).
:func:`zslbench.data.fetch.weights.ensure_weights` downloads what is missing when the machine is online.

>>> spec = parse("paper", "resnet101.tv_in1k")
>>> spec.kind, spec.tag
('timm', 'resnet101.tv_in1k')
>>> describe(spec)
"paper: timm resnet101.tv_in1k (torchvision's ImageNet-1k ResNet-101, IMAGENET1K_V1)"
>>> parse("", "resnet101.tv_in1k").kind
'none'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zslbench.core.errors import ConfigError, UserError

NONE, PAPER, HUB, TIMM_PREFIX = "none", "paper", "hub", "timm:"


@dataclass(frozen=True)
class PublishedWeights:
    """A weights file as its authors published it: the URL, the file name (``<name>-<sha256 prefix>.<ext>``,
    torch.hub's convention) and what they are."""

    url: str
    description: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """The hash prefix in the file name (``resnet101-63fe2227.pth`` → ``63fe2227``)."""
        return self.filename.rsplit(".", 1)[0].rsplit("-", 1)[-1]


#: The ImageNet weights the reference implementations of SVIP, TransZero and APN load, by timm tag.
PUBLISHED: dict[str, PublishedWeights] = {
    "vit_base_patch16_224.orig_in21k_ft_in1k": PublishedWeights(
        "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/"
        "jx_vit_base_p16_224-80ecf9dd.pth",
        "ViT-B/16 pre-trained on ImageNet-21k, fine-tuned on ImageNet-1k: the original weights of Dosovitskiy et al."),
    "resnet101.tv_in1k": PublishedWeights(
        "https://download.pytorch.org/models/resnet101-63fe2227.pth",
        "torchvision's ImageNet-1k ResNet-101, IMAGENET1K_V1"),
}


@dataclass(frozen=True)
class WeightsSpec:
    """A parsed ``model.pretrained``: ``kind`` none | timm | hub | file; ``paper`` when it came from ``paper``."""

    kind: Literal["none", "timm", "hub", "file"]
    tag: str = ""
    path: Path | None = None
    paper: bool = False


def parse(pretrained: str, paper_tag: str = "", backbone: str = "") -> WeightsSpec:
    """Read a ``model.pretrained`` value (``paper_tag``: the model's paper weights; ``backbone``: for errors)."""
    value = str(pretrained or "").strip()
    if value in ("", NONE):
        return WeightsSpec("none")
    if value == PAPER:
        if not paper_tag:
            raise ConfigError(f"model.pretrained=paper: this model names no paper weights{_of(backbone)}; use none, "
                              "timm:<tag>, hub or a weights file")
        return WeightsSpec("timm", paper_tag, paper=True)
    if value == HUB:
        return WeightsSpec("hub")
    if value.startswith(TIMM_PREFIX):
        tag = value[len(TIMM_PREFIX):]
        if "." not in tag:
            raise ConfigError(f"model.pretrained={value}: name a timm pretrained tag, <model>.<tag> "
                              "(e.g. timm:vit_base_patch16_224.orig_in21k_ft_in1k)")
        return WeightsSpec("timm", tag)
    return WeightsSpec("file", path=Path(value).expanduser())


def _of(backbone: str) -> str:
    return f" (backbone {backbone})" if backbone else ""


def describe(spec: WeightsSpec) -> str:
    """One line saying where the weights come from (dry runs, MLflow tags, table footnotes)."""
    if spec.kind == "none":
        return "random init"
    if spec.kind == "hub":
        return "hub: timm's default tag of the backbone"
    if spec.kind == "file":
        return f"file: {spec.path}"
    published = PUBLISHED.get(spec.tag)
    what = f" ({published.description})" if published else ""
    return f"{'paper: ' if spec.paper else ''}timm {spec.tag}{what}"


# --------------------------------------------------------------------------- the hub caches
def torch_checkpoints() -> Path:
    """torch.hub's download folder: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` by default)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def hf_hub_cache() -> Path:
    """Hugging Face's hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def cached_file(tag: str) -> Path | None:
    """The file of timm tag ``tag`` in the hub caches, if there (timm's Hugging Face download first)."""
    snapshots = hf_hub_cache() / f"models--timm--{tag}" / "snapshots"
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = sorted(snapshots.glob(f"*/{name}"))
        if found:
            return found[-1]
    published = PUBLISHED.get(tag)
    if published is not None and (torch_checkpoints() / published.filename).is_file():
        return torch_checkpoints() / published.filename
    return None


def local_file(spec: WeightsSpec) -> Path | None:
    """The weights file a spec loads (``None`` for random init and timm's own hub download).

    Looks only on this machine; a missing file is a one-line :class:`UserError` that says how to get it.
    """
    if spec.kind in ("none", "hub"):
        return None
    if spec.kind == "file":
        assert spec.path is not None
        if not spec.path.is_file():
            raise UserError(f"pretrained weights {str(spec.path)!r} do not exist; set model.pretrained to a "
                            "state-dict or .safetensors file, to paper, timm:<tag>, hub, or none for random init")
        return spec.path
    found = cached_file(spec.tag)
    if found is None:
        raise missing_weights(spec)
    return found


def resolve(pretrained: str, paper_tag: str = "", backbone: str = "") -> tuple[WeightsSpec, Path | None]:
    """``model.pretrained`` → (its spec, the local file to load or ``None``): what a backbone builder needs."""
    spec = parse(pretrained, paper_tag, backbone)
    return spec, local_file(spec)


def missing_weights(spec: WeightsSpec, reason: str = "") -> UserError:
    """The error of timm weights that are in no cache (and could not be downloaded: ``reason``)."""
    published = PUBLISHED.get(spec.tag)
    where = (f"{torch_checkpoints() / published.filename}" if published is not None
             else f"{hf_hub_cache() / f'models--timm--{spec.tag}'}")
    why = f" ({reason})" if reason else ""
    return UserError(f"the weights {describe(spec)} are not on this machine{why}; fetch them with "
                     f"`zslbench data fetch weights` (they go to {where}), or pass a file with "
                     "--set model.pretrained=PATH (model.pretrained=none trains from random init)")


def offline() -> bool:
    """Whether downloads are off: ``$ZSLBENCH_OFFLINE`` or Hugging Face's ``$HF_HUB_OFFLINE`` set to 1/true."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("ZSLBENCH_OFFLINE", "HF_HUB_OFFLINE"))
