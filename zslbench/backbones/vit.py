"""timm ViT backbones shared by SVIP and the ``vit`` baseline.

:func:`build_vit` builds a timm ``VisionTransformer`` of any even-grid geometry (pre-norm blocks,
qkv bias, LayerNorm eps 1e-6, no dropout or drop-path) and optionally loads ImageNet weights from
a local file in timm's ``vit_base_patch16_224`` key layout (position embeddings resampled when the
grid differs) or from timm's hub.

The trunk is driven piecewise so the models can change the token sequence between the patch
embedding and the blocks:

* :func:`embed_patches` — conv patch embeddings ``[B, G², D]`` (before CLS and position embeddings);
* :func:`add_positions` — prepend CLS and add position embeddings → ``[B, 1 + G², D]``;
* :func:`run_blocks` — all blocks with fused attention (``scaled_dot_product_attention``) + final norm;
* :func:`run_blocks_with_attention` — the same blocks, each one also materialising its post-softmax
  attention maps and handing them to a callback (only SVIP's source pass needs them).

Example:
    >>> from zslbench.baselines.vit.entry import ViTConfig
    >>> vit = build_vit(ViTConfig(backbone="vit_tiny_patch16_224", img_size=32, patch_size=8,
    ...                           embed_dim=32, depth=2, num_heads=2))
    >>> patch_grid(vit), vit.embed_dim
    (4, 32)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from zslbench.backbones.weights import resolve as resolve_weights
from zslbench.core.errors import ConfigError, UserError

if TYPE_CHECKING:  # timm is imported lazily: it is heavy
    from timm.models.vision_transformer import VisionTransformer

GEOMETRY_FIELDS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")


# --------------------------------------------------------------------------- construction
def build_vit(cfg: Any) -> "VisionTransformer":
    """Build the timm ViT named by ``cfg.backbone`` with the non-zero geometry overrides of ``cfg``.

    ``cfg.pretrained`` (see :mod:`zslbench.backbones.weights`): none, paper (``cfg.paper_weights``), a timm tag
    or a weights file — a state dict or ``.safetensors`` file in timm's ``vit_base_patch16_224`` layout, found
    on this machine — or hub for timm's own download.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    kwargs: dict[str, Any] = {name: getattr(cfg, name) for name in GEOMETRY_FIELDS if getattr(cfg, name, 0)}
    kwargs.update(num_classes=0, drop_rate=0.0, drop_path_rate=0.0)
    spec, weights_file = resolve_weights(cfg.pretrained, cfg.paper_weights, cfg.backbone)
    hub = spec.kind == "hub"
    if not timm.is_model(cfg.backbone):
        raise ConfigError(f"unknown timm backbone {cfg.backbone!r}; use a timm ViT name such as "
                          "vit_base_patch16_224 (timm.list_models('vit_*') lists them)")
    not_vit = ConfigError(f"model.backbone {cfg.backbone!r} is not a timm VisionTransformer; "
                          "use e.g. vit_base_patch16_224")
    try:
        model = timm.create_model(cfg.backbone, pretrained=hub, **kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):  # e.g. a CNN has no img_size / embed_dim
            raise not_vit from None
        raise
    except (AssertionError, ValueError) as exc:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k in GEOMETRY_FIELDS)
        hint = "check model.embed_dim is divisible by model.num_heads and the image size by the patch size"
        reason = exc or type(exc).__name__
        raise ConfigError(f"timm cannot build {cfg.backbone!r} with {shown} ({reason}); {hint}") from None
    except (OSError, RuntimeError) as exc:
        if not hub:
            raise
        raise UserError(f"could not download the hub weights of {cfg.backbone!r} ({type(exc).__name__}); "
                        "download them elsewhere and pass the file with model.pretrained=PATH") from None
    if not isinstance(model, VisionTransformer):
        raise not_vit
    check_vit(model, cfg.backbone)
    for block in model.blocks:  # contextualised pass and inference: fused attention
        block.attn.fused_attn = True
    if weights_file is not None:
        load_pretrained(model, str(weights_file))
    return model


def check_vit(model: "VisionTransformer", name: str = "backbone") -> None:
    """Refuse geometries and block types that super-patches or attention rollout cannot handle."""
    grid_h, grid_w = model.patch_embed.grid_size
    if grid_h != grid_w or grid_h % 2:
        raise ConfigError(f"{name} has a {grid_h}×{grid_w} patch grid; super-patches need a square, even grid "
                          "(e.g. model.img_size=64 with model.patch_size=8)")
    if model.cls_token is None or model.num_prefix_tokens != 1:
        raise ConfigError(f"{name} must have exactly one CLS token and no register tokens; "
                          "use e.g. vit_base_patch16_224")
    if getattr(model, "dynamic_img_size", False):
        raise ConfigError(f"{name} uses a dynamic image size; use a fixed-size ViT such as vit_base_patch16_224")
    block_parts = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")
    attn_parts = ("qkv", "q_norm", "k_norm", "norm", "proj", "num_heads", "head_dim", "scale")
    for block in model.blocks:
        attn = getattr(block, "attn", None)
        if not all(hasattr(block, part) for part in block_parts) or not all(hasattr(attn, p) for p in attn_parts):
            raise ConfigError(f"{name} does not use timm's standard pre-norm ViT blocks; use e.g. vit_base_patch16_224")


def patch_grid(model: "VisionTransformer") -> int:
    """G: the side of the (square) patch grid."""
    return int(model.patch_embed.grid_size[0])


def patch_size(model: "VisionTransformer") -> int:
    """The patch side in pixels."""
    return int(model.patch_embed.patch_size[0])


# --------------------------------------------------------------------------- pretrained weights
def load_pretrained(model: "VisionTransformer", path: str) -> None:
    """Load a ``vit_base_patch16_224``-layout state dict (``.pt``/``.pth``/``.bin`` or ``.safetensors``).

    Position embeddings (and patch-embedding kernels) are resampled by timm when the geometry
    differs; the classifier head of the file is ignored. Problems raise :class:`UserError`.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"pretrained weights {str(file)!r} do not exist; set model.pretrained to a state-dict or "
                        ".safetensors file, to paper, timm:<tag>, hub, or none for random init")
    state = read_state_dict(file)
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "head_dist.", "fc_norm.", "pre_logits."))}
    try:
        state = checkpoint_filter_fn(state, model)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        detail = next((line.strip() for line in first if "size mismatch" in line), first[-1] if first else "")
        raise UserError(f"pretrained weights {str(file)!r} do not fit the backbone ({detail}); "
                        "use weights of the same ViT width/depth or change model.backbone") from None
    missing = [k for k in missing if not k.startswith(("head.", "fc_norm."))]
    if missing or unexpected:
        keys = ", ".join((missing or unexpected)[:3])
        kind = "lacks" if missing else "has unexpected"
        raise UserError(f"pretrained weights {str(file)!r} {kind} keys ({keys}, ...); "
                        "pass a state dict in timm's vit_base_patch16_224 layout")


def read_state_dict(file: Path) -> dict[str, Tensor]:
    """A state dict of tensors from a weights-only torch file or a .safetensors file (wrappers unwrapped)."""
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read pretrained weights {str(file)!r} ({type(exc).__name__}); "
                        "pass a torch state dict (weights only) or a .safetensors file") from None
    for key in ("model", "state_dict"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"pretrained weights {str(file)!r} hold no state dict of tensors; "
                        "pass a torch state dict or a .safetensors file")
    return state


# --------------------------------------------------------------------------- the trunk, piecewise
def embed_patches(model: "VisionTransformer", images: Tensor) -> Tensor:
    """Conv patch embeddings ``[B, G², D]`` in row-major grid order (no CLS, no position embeddings)."""
    return model.patch_embed(images)


def add_positions(model: "VisionTransformer", patches: Tensor) -> Tensor:
    """Prepend CLS and add position embeddings (timm's own path) → ``[B, 1 + G², D]``."""
    return model.norm_pre(model.patch_drop(model._pos_embed(patches)))


def run_blocks(model: "VisionTransformer", tokens: Tensor) -> Tensor:
    """All blocks with fused attention, then the final norm."""
    return model.norm(model.blocks(tokens))


def run_blocks_with_attention(model: "VisionTransformer", tokens: Tensor,
                              on_attention: Callable[[Tensor], None]) -> Tensor:
    """All blocks with materialised attention maps, then the final norm.

    ``on_attention`` receives every layer's post-softmax attention ``[B, H, N, N]`` (float32, no gradient).
    """
    for block in model.blocks:
        tokens, attention = block_forward_with_attention(block, tokens)
        on_attention(attention)
    return model.norm(tokens)


def block_forward_with_attention(block: torch.nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """One timm pre-norm block, reusing its weights, also returning its post-softmax attention ``[B, H, N, N]``.

    The block output goes through the fused kernel, exactly as :func:`run_blocks`; the maps are then
    computed from the same q, k without gradient (float32 logits and softmax, also under bf16 autocast). They only
    feed the rollout pseudo-labels, which carry no gradient, so nothing of size N × N is kept for the
    backward pass.
    """
    attn = block.attn
    batch, length, _ = x.shape
    h = block.norm1(x)
    qkv = attn.qkv(h).reshape(batch, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        # logits in float32 from the (possibly bf16) q, k: bf16 logits would round every weight by up to 6 %
        weights = ((q.float() * attn.scale) @ k.float().transpose(-2, -1)).softmax(dim=-1)
    out = attn.norm(out.transpose(1, 2).reshape(batch, length, -1))
    if getattr(attn, "gate", None) is not None:
        out = out * attn.gate(h).sigmoid()
    out = attn.proj(out)
    x = x + block.drop_path1(block.ls1(out))
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, weights
