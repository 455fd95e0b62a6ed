"""Fixed weights and inputs of the reference-equivalence tests (tests/test_reference_numerics.py).

Each model is built at a real geometry of its paper — CUB's 312 attributes and 150 of 200 classes seen;
SVIP on ViT-B/16 at 224 px (14×14 patches, 49 super-patches, K = 40) cut to two blocks; TransZero on 14×14
regions of 2048 channels at d = 300; APN's heads on a 7×7×2048 map — with weights that do not depend on
torch's random generator. Every weight is named as the reference implementation names it (the keys of its
``state_dict``) and drawn from a numpy generator seeded by that name, so the same numbers can be loaded into
the reference code and into zslbench: ``load_*`` map the reference names onto zslbench's parameters. The
expected values in tests/golden/reference_numerics.json were obtained by running the reference code on these
weights and inputs (see that file's ``source``).

>>> names = cub_attribute_names()
>>> len(names), names[0], [len(g) for g in cub_type_groups()][:3]
(312, 'has_bill_shape::0', [9, 15, 15])
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np
import torch

#: CUB's 28 attribute types with their number of values, in the order of CUB's attributes.txt.
CUB_ATTRIBUTE_TYPES = [
    ("has_bill_shape", 9), ("has_wing_color", 15), ("has_upperparts_color", 15), ("has_underparts_color", 15),
    ("has_breast_pattern", 4), ("has_back_color", 15), ("has_tail_shape", 6), ("has_upper_tail_color", 15),
    ("has_head_pattern", 11), ("has_breast_color", 15), ("has_throat_color", 15), ("has_eye_color", 14),
    ("has_bill_length", 3), ("has_forehead_color", 15), ("has_under_tail_color", 15), ("has_nape_color", 15),
    ("has_belly_color", 15), ("has_wing_shape", 5), ("has_size", 5), ("has_shape", 14), ("has_back_pattern", 4),
    ("has_tail_pattern", 4), ("has_belly_pattern", 4), ("has_primary_color", 15), ("has_leg_color", 15),
    ("has_bill_color", 15), ("has_crown_color", 15), ("has_wing_pattern", 4),
]
CLASSES, SEEN, ATTRIBUTES, WORD_DIM = 200, 150, 312, 300


def cub_attribute_names() -> list[str]:
    return [f"{kind}::{value}" for kind, count in CUB_ATTRIBUTE_TYPES for value in range(count)]


def cub_type_groups() -> list[list[int]]:
    """CUB's 28 attribute-type groups (consecutive index ranges), as SVIP's reference defines them."""
    groups, start = [], 0
    for _, count in CUB_ATTRIBUTE_TYPES:
        groups.append(list(range(start, start + count)))
        start += count
    return groups


def generator(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def draw(name: str, shape: tuple[int, ...], kind: str = "") -> np.ndarray:
    """The value of weight ``name``: a function of its name and shape alone.

    ``kind``: ``bias`` 0.02·N; ``norm`` (LayerNorm scale) 1 + 0.1·N; ``small`` 0.02·N; ``tenth`` 0.1·N;
    ``rows`` N with unit rows; ``prototype`` 10⁻³·|N| (APN's non-negative prototypes, at the scale its maps
    need to be informative); default N / √fan-in. (Scales keep every loss term away from saturation.)
    """
    values = generator(name).standard_normal(shape)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    scale = {"bias": 0.02, "small": 0.02, "tenth": 0.1}.get(kind)
    if kind == "norm":
        values = 1.0 + 0.1 * values
    elif kind == "prototype":
        values = 1e-3 * np.abs(values)
    elif kind == "rows":
        values = values / np.linalg.norm(values, axis=1, keepdims=True)
    else:
        values = values * (scale if scale is not None else 1.0 / np.sqrt(fan_in))
    return values.astype(np.float32)


def unit_rows(values: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64, then float32 (a normalisation either side may repeat)."""
    values = np.asarray(values, dtype=np.float64)
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def cub_like_info(name: str = "CUB"):
    """CUB-shaped class-level data: non-negative class attributes with unit rows, 300-d word vectors."""
    from zslbench.catalogue import DatasetInfo

    attributes = unit_rows(np.abs(generator("class_attributes").standard_normal((CLASSES, ATTRIBUTES))))
    words = generator("word_vectors").standard_normal((ATTRIBUTES, WORD_DIM)).astype(np.float32)
    return DatasetInfo(name, attributes, np.arange(SEEN), np.arange(SEEN, CLASSES), words,
                       attribute_names=cub_attribute_names(), attribute_groups=cub_type_groups())


def labels(batch: int) -> np.ndarray:
    """Seen-class labels (the seen classes are 0..149, so global ids are seen positions)."""
    return generator("labels").integers(0, SEEN, batch)


def sketch(name: str, values: torch.Tensor | np.ndarray, rows: int = 4) -> list[float]:
    """``rows`` fixed random projections of a whole tensor: a handful of numbers that change when any entry does."""
    flat = np.asarray(values.detach().double() if isinstance(values, torch.Tensor) else values, np.float64).ravel()
    projection = generator(f"sketch:{name}").standard_normal((rows, flat.size))
    return (projection @ flat).tolist()


# --------------------------------------------------------------------------- mapping onto zslbench
Mapping = list[tuple[str, list[str], str]]  # (zslbench parameter, reference names concatenated on dim 0, kind)


def reference_weights(model: torch.nn.Module, mapping: Mapping,
                      shape_of: Callable[[str, tuple[int, ...]], tuple[int, ...]] = lambda name, shape: shape
                      ) -> dict[str, np.ndarray]:
    """The fixed weights, by reference name, for every mapped parameter of ``model`` that exists."""
    params = dict(model.named_parameters())
    weights = {}
    for ours, theirs, kind in mapping:
        if ours not in params:
            continue
        shape = tuple(params[ours].shape)
        part = (shape[0] // len(theirs), *shape[1:])
        for name in theirs:
            weights[name] = draw(name, shape_of(name, part), kind)
    return weights


def load(model: torch.nn.Module, weights: dict[str, np.ndarray], mapping: Mapping) -> None:
    """Copy ``weights`` (reference names) into ``model``'s mapped parameters (concatenating split ones)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for ours, theirs, _ in mapping:
            if ours in params:
                value = np.concatenate([weights[name].reshape(-1, *params[ours].shape[1:]) for name in theirs])
                params[ours].copy_(torch.from_numpy(value).reshape(params[ours].shape))


# --------------------------------------------------------------------------- TransZero
TRANSZERO_BATCH = 4
_ENC, _DEC = "transformer.transformer_encoder.layers.0.", "transformer.transformer_decoder.layers.0."


def transzero_mapping() -> Mapping:
    linear = lambda ours, theirs: [(f"{ours}.weight", [f"{theirs}.weight"], ""),  # noqa: E731
                                   (f"{ours}.bias", [f"{theirs}.bias"], "bias")]
    norm = lambda ours, theirs: [(f"{ours}.weight", [f"{theirs}.weight"], "norm"),  # noqa: E731
                                 (f"{ours}.bias", [f"{theirs}.bias"], "bias")]
    attention = _ENC + "mhatt.attention."
    mapping: Mapping = [("word_vectors", ["V"], "rows"), ("w1", ["W_1"], "tenth")]
    mapping += linear("region_proj", "transformer.embed_cv.0") + linear("attribute_proj", "transformer.embed_attr.0")
    mapping += [("encoder.attention.qkv.weight", [f"{attention}fc_{x}.weight" for x in "qkv"], ""),
                ("encoder.attention.qkv.bias", [f"{attention}fc_{x}.bias" for x in "qkv"], "bias")]
    mapping += linear("encoder.attention.proj", attention + "fc_o")
    mapping += linear("encoder.geometry_weight", "transformer.transformer_encoder.WGs.0")
    mapping += norm("encoder.norm1", _ENC + "mhatt.layer_norm") + norm("encoder.norm_repeat", _ENC + "lnorm")
    mapping += norm("encoder.norm2", _ENC + "pwff.layer_norm")
    mapping += linear("encoder.ffn.0", _ENC + "pwff.fc1") + linear("encoder.ffn.3", _ENC + "pwff.fc2")
    for ours, theirs in (("self_attention", "self_attn"), ("cross_attention", "multihead_attn")):
        mapping += [(f"decoder.{ours}.in_proj_weight", [f"{_DEC}{theirs}.in_proj_weight"], ""),
                    (f"decoder.{ours}.in_proj_bias", [f"{_DEC}{theirs}.in_proj_bias"], "bias")]
        mapping += linear(f"decoder.{ours}.out_proj", f"{_DEC}{theirs}.out_proj")
    for i in (1, 2, 3):
        mapping += norm(f"decoder.norm{i}", f"{_DEC}norm{i}")
    mapping += linear("decoder.ffn.0", _DEC + "linear1") + linear("decoder.ffn.3", _DEC + "linear2")
    return mapping


def transzero_config(**overrides):
    from zslbench.baselines.transzero.entry import TransZeroConfig

    # CUB's GZSL configuration (d 300, d_ff 512, λ_SC 0.3, λ_AR 0.005) on ResNet-101's 14×14 map at 448 px
    options = dict(backbone="resnet101", img_size=448, output_stride=0, d_model=300, d_ff=512, dropout=0.4,
                   heads=1, attribute_self_attention=True, normalize_word_vectors=False,
                   self_calibration_weight=0.3, attribute_regression_weight=0.005)
    return TransZeroConfig(**{**options, **overrides})


def transzero_features() -> np.ndarray:
    """[B, 196, 2048] non-negative region features (a ReLU map's values)."""
    return np.abs(generator("transzero:features").standard_normal((TRANSZERO_BATCH, 196, 2048))).astype(np.float32)


def transzero_model(**overrides):
    """zslbench's TransZero with the fixed weights, in eval mode (dropout off, as the expected values)."""
    from zslbench.baselines.transzero.model import TransZero

    model = TransZero(transzero_config(**overrides), cub_like_info())
    mapping = transzero_mapping()
    load(model, reference_weights(model, mapping), mapping)
    return model.eval()


# --------------------------------------------------------------------------- APN
APN_BATCH = 3


def apn_mapping() -> Mapping:
    return [("global_conv", ["ALE_vector"], "prototype"), ("prototypes", ["prototype_vectors.layer4"], "prototype")]


def apn_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape, 1, 1)  # the reference's 1×1 conv filters [A, C, 1, 1]


def apn_config(**overrides):
    from zslbench.baselines.apn.entry import APNConfig

    # CUB's GZSL script: xe 1, attri 1e-2, regular 5e-5, l_xe 1, l_attri 1e-1, l_regular 4e-2, cpt 1e-9, groups
    # on, max-pool; the backbone is not used (the heads run on a fixed map), resnet26 ends in 2048 channels too
    options = dict(backbone="resnet26", pretrained="none", img_size=224, xe=1.0, attri=1e-2, regular=5e-5,
                   l_xe=1.0, l_attri=1e-1, l_regular=4e-2, cpt=1e-9, use_groups=True, pool="max")
    return APNConfig(**{**options, **overrides})


def apn_feature_map() -> np.ndarray:
    """[B, 2048, 7, 7] non-negative layer-4 map."""
    return np.abs(generator("apn:layer4").standard_normal((APN_BATCH, 2048, 7, 7))).astype(np.float32)


def apn_model(**overrides):
    from zslbench.baselines.apn.model import APN

    model = APN(apn_config(**overrides), cub_like_info())
    mapping = apn_mapping()
    load(model, reference_weights(model, mapping, apn_shape), mapping)
    return model


# --------------------------------------------------------------------------- SVIP
SVIP_BATCH = 2
SVIP_DEPTH = 2


def svip_mapping(depth: int = SVIP_DEPTH) -> Mapping:
    mapping: Mapping = [("vit.cls_token", ["cls_token"], "small"), ("vit.pos_embed", ["pos_embed"], "small"),
                        ("vit.patch_embed.proj.weight", ["patch_embed.proj.weight"], ""),
                        ("vit.patch_embed.proj.bias", ["patch_embed.proj.bias"], "bias"),
                        ("vit.norm.weight", ["norm.weight"], "norm"), ("vit.norm.bias", ["norm.bias"], "bias")]
    for i in range(depth):
        block = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            mapping += [(f"vit.{block}{norm}.weight", [f"{block}{norm}.weight"], "norm"),
                        (f"vit.{block}{norm}.bias", [f"{block}{norm}.bias"], "bias")]
        for layer in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            mapping += [(f"vit.{block}{layer}.weight", [f"{block}{layer}.weight"], ""),
                        (f"vit.{block}{layer}.bias", [f"{block}{layer}.bias"], "bias")]
    for ours, theirs in (("p2a", "head_1"), ("patch_cls.0", "token_cls.0"), ("patch_cls.2", "token_cls.2"),
                         ("w2p.v2p", "v2p"), ("w2p.p2t", "p2t")):
        mapping += [(f"{ours}.weight", [f"{theirs}.weight"], ""), (f"{ours}.bias", [f"{theirs}.bias"], "bias")]
    return mapping


def svip_config(**overrides):
    from zslbench.svip.entry import SVIPConfig

    # CUB: K 40, λ2 3, att_dec 0.3, KL at T 20, σ 5, mean pooling, strip-4 grouping, hard targets, add
    options = dict(backbone="vit_base_patch16_224", img_size=224, depth=SVIP_DEPTH, keep=40, patch_cls_weight=3.0,
                   att_dec=0.3)
    return SVIPConfig(**{**options, **overrides})


def svip_images() -> np.ndarray:
    return generator("svip:images").standard_normal((SVIP_BATCH, 3, 224, 224)).astype(np.float32)


def svip_model(**overrides):
    from zslbench.svip.model import SVIP

    model = SVIP(svip_config(**overrides), cub_like_info())
    mapping = svip_mapping()
    load(model, reference_weights(model, mapping), mapping)
    return model
