"""timm backbones as region-feature extractors, shared by the TransZero-style and APN-style baselines.

* :func:`create_backbone` builds any timm model without its classifier and pooling, optionally
  with a smaller output stride (dilated last stages, CNNs only), and loads weights from a local
  state dict / ``.safetensors`` file or timm's hub;
* :func:`region_map` runs it and returns the last feature map as ``[B, C, h, w]`` whatever the
  family: CNNs (NCHW), channels-last models (NHWC, e.g. Swin) and ViTs (patch tokens, prefix
  tokens dropped, reshaped to the patch grid);
* :func:`region_geometry` gives ``(C, h, w)`` without computing anything (a forward pass on
  PyTorch's ``meta`` device), so a model can size its layers before any feature exists;
* :func:`freeze_as_buffers` turns the parameters of a sub-module into buffers.

Example:
    >>> region_geometry("resnet10t", img_size=32, output_stride=8)
    (512, 4, 4)
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zslbench.backbones.vit import read_state_dict
from zslbench.backbones.weights import resolve as resolve_weights
from zslbench.core.errors import ConfigError, UserError

#: classifier / pre-logits keys a weights file may carry that a headless backbone lacks
HEAD_PREFIXES = ("fc.", "head.", "head_dist.", "classifier.", "last_linear.", "fc_norm.", "pre_logits.")


# --------------------------------------------------------------------------- construction
def create_backbone(name: str, pretrained: str = "none", img_size: int = 0, output_stride: int = 0,
                    seed: int | None = None, paper_tag: str = "") -> nn.Module:
    """The timm model ``name`` with no classifier and no global pooling.

    ``pretrained`` (:mod:`zslbench.backbones.weights`): none (random init from ``seed`` when given, without
    touching the global RNG), paper (``paper_tag``), a timm tag or a weights file found on this machine, or hub
    for timm's own download.
    ``img_size`` is passed to models that take it (ViTs); ``output_stride`` (8, 16) dilates the
    last stages of CNNs that support it (0 = the architecture's own stride).
    """
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"unknown timm backbone {name!r}; use a timm model name such as resnet101 "
                          "(timm.list_models() lists them)")
    if output_stride not in (0, 8, 16, 32):
        raise ConfigError(f"model.output_stride must be 0 (native), 8, 16 or 32, got {output_stride}")
    kwargs: dict[str, Any] = {"num_classes": 0, "global_pool": ""}
    if output_stride:
        kwargs["output_stride"] = output_stride
    spec, weights_file = resolve_weights(pretrained, paper_tag, name)
    hub = spec.kind == "hub"
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = _create(timm, name, hub, img_size, kwargs)
    if weights_file is not None:
        load_weights(model, weights_file)
    return model


def _create(timm, name: str, hub: bool, img_size: int, kwargs: dict[str, Any]) -> nn.Module:
    try:
        try:
            return timm.create_model(name, pretrained=hub, **kwargs, **({"img_size": img_size} if img_size else {}))
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
            return timm.create_model(name, pretrained=hub, **kwargs)  # CNNs take any input size
    except TypeError as exc:
        if "output_stride" in str(exc):
            raise ConfigError(f"backbone {name!r} does not support model.output_stride; set it to 0") from None
        raise
    except (OSError, RuntimeError) as exc:
        if not hub:
            raise
        raise UserError(f"could not download the hub weights of {name!r} ({type(exc).__name__}); download them "
                        "elsewhere and pass the file with model.pretrained=PATH") from None


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a weights file into a headless timm backbone; classifier keys of the file are ignored."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"pretrained weights {str(file)!r} do not exist; set model.pretrained to a state-dict or "
                        ".safetensors file, to paper, timm:<tag>, hub, or none for random init")
    state = read_state_dict(file)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((line.strip() for line in lines if "size mismatch" in line), lines[-1] if lines else "")
        raise UserError(f"pretrained weights {str(file)!r} do not fit the backbone ({detail}); "
                        "use weights of the same architecture or change model.backbone") from None
    if missing or unexpected:
        keys = ", ".join((missing or unexpected)[:3])
        kind = "lacks" if missing else "has unexpected"
        raise UserError(f"pretrained weights {str(file)!r} {kind} keys ({keys}, ...); pass a state dict of the "
                        "timm architecture named by model.backbone")


@lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_identity(pretrained: str, backbone: str, seed: int, paper_tag: str = "") -> str:
    """What determines a backbone's weights: ``random:<seed>``, ``sha256:<file hash>`` or ``hub:<timm tag>``
    (a paper or timm tag is the file it resolves to, so the same file under two spellings is one identity).

    >>> weights_identity("none", "resnet18", 3), weights_identity("", "resnet18", 3)
    ('random:3', 'random:3')
    """
    spec, file = resolve_weights(pretrained, paper_tag, backbone)
    if spec.kind == "none":
        return f"random:{seed}"
    if spec.kind == "hub":
        import timm

        return f"hub:{timm.__version__}:{backbone}"
    assert file is not None
    stat = file.stat()
    return "sha256:" + _file_digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns)


# --------------------------------------------------------------------------- running
def region_map(model: nn.Module, images: Tensor) -> Tensor:
    """The backbone's last feature map ``[B, C, h, w]`` (ViT patch tokens reshaped to their grid)."""
    features = model.forward_features(images)
    if features.ndim == 4:
        if getattr(model, "output_fmt", "NCHW") == "NHWC":
            features = features.permute(0, 3, 1, 2)
        return features
    if features.ndim == 3:  # tokens: drop CLS / register tokens, reshape the patches to the grid
        prefix = int(getattr(model, "num_prefix_tokens", 0))
        tokens = features[:, prefix:]
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        if grid is None or int(grid[0]) * int(grid[1]) != tokens.shape[1]:
            raise ConfigError(f"cannot arrange the {tokens.shape[1]} tokens of {type(model).__name__} on a patch grid; "
                              "use a CNN or a fixed-size ViT backbone")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], int(grid[0]), int(grid[1]))
    raise ConfigError(f"backbone {type(model).__name__} returns features of shape {tuple(features.shape)}, "
                      "neither a feature map nor tokens; use a CNN or ViT backbone")


@lru_cache(maxsize=32)
def region_geometry(name: str, img_size: int, output_stride: int = 0) -> tuple[int, int, int]:
    """``(channels, h, w)`` of :func:`region_map` for ``img_size`` inputs, computed on the meta device."""
    import timm

    if img_size <= 0:
        raise ConfigError(f"model.img_size must be positive, got {img_size}")
    with torch.device("meta"):
        model = _create(timm, name, False, img_size, {"num_classes": 0, "global_pool": "",
                                                       **({"output_stride": output_stride} if output_stride else {})}) \
            if timm.is_model(name) else None
        if model is None:
            raise ConfigError(f"unknown timm backbone {name!r}; use a timm model name such as resnet101")
        try:
            out = region_map(model, torch.empty(1, 3, img_size, img_size))
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise ConfigError(f"backbone {name!r} cannot take {img_size}×{img_size} inputs ({exc}); "
                              "change model.img_size") from None
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


# --------------------------------------------------------------------------- freezing
def freeze_as_buffers(module: nn.Module) -> None:
    """Turn every parameter of ``module`` (recursively) into a buffer of the same name.

    The values stay in ``state_dict`` under the same keys (pretrained weights and checkpoints load
    unchanged) but leave ``parameters()``: nothing — an optimiser, gradient clipping, or the engine
    switching ``requires_grad`` on at a phase change — can train them. BatchNorm layers keep
    working in train mode (batch statistics, running-stat updates), as in the reference.
    """
    for sub in module.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            del sub._parameters[name]
            sub.register_buffer(name, param.detach().clone())


def is_resnet(model: nn.Module) -> bool:
    """Whether ``model`` has the ResNet stage layout (``layer1`` … ``layer4``) that APN freezes by."""
    return all(hasattr(model, f"layer{i}") for i in range(1, 5))


def resnet_stem_and_layer1(model: nn.Module) -> list[nn.Module]:
    """The modules of a timm ResNet before ``layer2`` (stem convs, norms, pooling, ``layer1``)."""
    children = []
    for name, child in model.named_children():
        if name == "layer2":
            break
        children.append(child)
    return children
