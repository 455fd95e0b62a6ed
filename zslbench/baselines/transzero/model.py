"""TransZero-style baseline (Chen et al., AAAI 2022; BASELINES.md §2), on cached frozen-backbone regions.

The model reads ``batch["features"]`` — ``[B, R, C]`` region vectors of a frozen timm backbone,
extracted once into :mod:`zslbench.data.feature_cache` (``input_kind = "features"``) — and:

1. L2-normalises each region over its channels; projects regions (Linear C→d) and the attribute
   word vectors V [A, d_w] (trainable, initialised L2-normalised; re-normalised every forward when
   ``normalize_word_vectors``, as for AWA2) (Linear d_w→d);
2. **feature-augmentation encoder** (one post-norm layer): self-attention over the regions whose
   logits ``QKᵀ/√d_h`` have the learned relative-geometry term ``ReLU(Linear(64→heads)(g_ij))``
   subtracted, its weights dropped out at ``encoder_attention_dropout`` (the reference: 0.1 whatever the
   model's dropout), residual + LayerNorm — applied **twice** with ``double_residual`` (the reference:
   x₁ = LN(r + drop(attn(r))), x = LN′(r + drop(x₁))) —, FFN d→d_ff→d, residual + LayerNorm; the q, k, v and
   output projections start xavier-uniform with zero bias (``attention_init=xavier``, the reference; each of
   q, k, v its own [d, d] block) or from torch's default;
3. **visual-semantic decoder** (one post-norm layer): the A attribute embeddings as queries,
   optional self-attention among them, cross-attention to the encoded regions, FFN → [B, A, d];
4. attribute scores ``ψ[b, i] = (V_i W₁) · out[b, i]`` with W₁ [d_w, d] ~ N(0, 1);
5. class scores ``s_k = Σ_i S_n[k, i] ψ_i + m_k`` with S_n the row-normalised class attributes of
   all classes (``DatasetInfo.class_attributes``) and the fixed self-calibration margin m_k = +b for
   unseen, −b for seen classes (b = ``margin_size``; 0 for classes that are neither, e.g. test
   classes during the validation protocol). The margin stays at test time: it is a built-in
   logit calibration of γ = 2b (:attr:`TransZero.builtin_gamma`).

Losses (:meth:`TransZero.losses`): ``ce`` = CE over the classes in play (seen ∪ unseen) on s − m;
``self_calibration`` = λ_SC · −log(mean_b Σ_{u∈unseen} softmax(s)_u); ``attribute_regression`` =
λ_AR · MSE(ψ, S_n[y]).

**Relative geometry** (:func:`relative_geometry_embedding`). Region r of an h×w map is the grid cell
(row, col). For regions i, j the 4 box-relation components, in the reference's order, are
``δ_row = log(max(|row_i − row_j| / u_h, 10⁻³))``, ``δ_col`` likewise with columns and u_w, then the two
size ratios ``log(size_i / size_j)``, which are 0 on a regular grid. The unit u is where the two offset
conventions differ: ``geometry_offsets=reference`` measures offsets in units of G + 1 cells (u_h = h + 1,
u_w = w + 1): the reference builds boxes of normalised size 1/G and adds 1 to the size, a pixel-box
convention, so its Δ is log(Δ/(G + 1)) — on its fixed 14×14 grid, here on the map's own grid —; ``cells``
counts cells (u = 1). Each component is multiplied by 100 and by 8 frequencies ``1000^(−k/8)``, k = 0..7,
giving 32 arguments ordered (component, frequency); the 64-d embedding is ``[sin(arguments),
cos(arguments)]``. Consequences the tests check: g_ij = g_ji, g depends only on (|Δrow|, |Δcol|), g_ii is one
constant vector (offsets clamped to 10⁻³) for every i, and the size slots are sin 0 = 0 and cos 0 = 1
everywhere.

Example:
    >>> relative_geometry_embedding(3, 3).shape
    torch.Size([9, 9, 64])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zslbench.backbones.attributes import class_logits
from zslbench.core.errors import ConfigError, DataError
from zslbench.catalogue import DatasetInfo

GEOMETRY_DIM = 64
GEOMETRY_FREQUENCIES = 8
GEOMETRY_CLAMP = 1e-3


# --------------------------------------------------------------------------- relative geometry
def relative_geometry_embedding(grid_h: int, grid_w: int, offsets: str = "reference") -> Tensor:
    """The 64-d sinusoidal box-relation embedding g [R, R, 64] of an h×w region grid (module docstring);
    ``offsets``: ``reference`` (in units of G + 1 cells) or ``cells``."""
    rows, cols = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64),
                                torch.arange(grid_w, dtype=torch.float64), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    unit_h, unit_w = (grid_h + 1.0, grid_w + 1.0) if offsets == "reference" else (1.0, 1.0)
    delta_row = torch.log(((rows[:, None] - rows[None, :]).abs() / unit_h).clamp(min=GEOMETRY_CLAMP))
    delta_col = torch.log(((cols[:, None] - cols[None, :]).abs() / unit_w).clamp(min=GEOMETRY_CLAMP))
    sizes = torch.zeros_like(delta_row)  # log(size_i / size_j) of equal boxes
    components = torch.stack([delta_row, delta_col, sizes, sizes], dim=-1)  # [R, R, 4]
    frequencies = 1000.0 ** (-torch.arange(GEOMETRY_FREQUENCIES, dtype=torch.float64) / GEOMETRY_FREQUENCIES)
    arguments = (100.0 * components[..., None] * frequencies).flatten(-2)  # [R, R, 32], (component, frequency)
    return torch.cat([arguments.sin(), arguments.cos()], dim=-1).float()


# --------------------------------------------------------------------------- layers
class GeometryAttention(nn.Module):
    """Multi-head self-attention whose logits have a non-negative geometry penalty subtracted."""

    def __init__(self, dim: int, heads: int, dropout: float, init: str = "xavier"):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"model.d_model ({dim}) must be divisible by model.heads ({heads})")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        if init == "xavier":  # as the reference's separate q, k, v, o layers: xavier per [d, d] block, zero bias
            for block in (*self.qkv.weight.data.chunk(3), self.proj.weight.data):
                nn.init.xavier_uniform_(block)
            nn.init.zeros_(self.qkv.bias)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, penalty: Tensor | None) -> Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # [B, H, R, R]
        if penalty is not None:
            logits = logits - penalty.to(logits.dtype)  # [H, R, R] broadcast over the batch
        weights = self.dropout(logits.softmax(dim=-1))
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, length, dim))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class AugmentationEncoder(nn.Module):
    """The feature-augmentation encoder layer (post-norm) with the relative-geometry penalty; with
    ``double_residual`` the attention's residual + LayerNorm is applied a second time (``norm_repeat``)."""

    def __init__(self, dim: int, hidden: int, heads: int, dropout: float, geometry: bool,
                 attention_dropout: float | None = None, double_residual: bool = False, init: str = "default"):
        super().__init__()
        self.attention = GeometryAttention(dim, heads, dropout if attention_dropout is None else attention_dropout,
                                           init)
        self.geometry_weight = nn.Linear(GEOMETRY_DIM, heads) if geometry else None
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_repeat = nn.LayerNorm(dim) if double_residual else None
        self.ffn = FeedForward(dim, hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def geometry_penalty(self, embedding: Tensor) -> Tensor | None:
        """ReLU(Linear(64→heads)(g)) as [heads, R, R] (None when the geometry term is off)."""
        if self.geometry_weight is None:
            return None
        return F.relu(self.geometry_weight(embedding)).permute(2, 0, 1)

    def forward(self, regions: Tensor, embedding: Tensor) -> Tensor:
        x = self.norm1(regions + self.dropout(self.attention(regions, self.geometry_penalty(embedding))))
        if self.norm_repeat is not None:  # the reference's encoder layer adds its input once more
            x = self.norm_repeat(regions + self.dropout(x))
        return self.norm2(x + self.dropout(self.ffn(x)))


class AttributeDecoder(nn.Module):
    """The visual-semantic decoder layer (post-norm): attribute queries attend to the regions."""

    def __init__(self, dim: int, hidden: int, heads: int, dropout: float, self_attention: bool):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"model.d_model ({dim}) must be divisible by model.heads ({heads})")
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) \
            if self_attention else None
        self.cross_attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, hidden, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        x = queries
        if self.self_attention is not None:
            x = self.norm1(x + self.dropout(self.self_attention(x, x, x, need_weights=False)[0]))
        x = self.norm2(x + self.dropout(self.cross_attention(x, memory, memory, need_weights=False)[0]))
        return self.norm3(x + self.dropout(self.ffn(x)))


# --------------------------------------------------------------------------- the model
class TransZero(nn.Module):
    """TransZero-style model on cached region features (module docstring; config: ``TransZeroConfig``)."""

    def __init__(self, cfg: Any, info: DatasetInfo):
        super().__init__()
        from zslbench.backbones.cnn import region_geometry

        self.cfg = cfg
        channels, grid_h, grid_w = region_geometry(cfg.backbone, int(cfg.img_size), int(cfg.output_stride))
        self.channels, self.grid = channels, (grid_h, grid_w)
        word_vectors = torch.as_tensor(np.asarray(info.word_vectors), dtype=torch.float32)
        if word_vectors.ndim != 2 or word_vectors.shape[0] != info.num_attributes:
            raise DataError(f"word vectors have shape {tuple(word_vectors.shape)} but the dataset has "
                            f"{info.num_attributes} attributes; set data.word_vectors to a matching [A, D] file")
        dim, word_dim = int(cfg.d_model), int(word_vectors.shape[1])
        self.word_vectors = nn.Parameter(F.normalize(word_vectors, dim=-1))
        self.w1 = nn.Parameter(torch.randn(word_dim, dim) * float(cfg.w1_init_std))
        self.region_proj = nn.Linear(channels, dim)
        self.attribute_proj = nn.Linear(word_dim, dim)
        self.encoder = AugmentationEncoder(dim, int(cfg.d_ff), int(cfg.heads), float(cfg.dropout), bool(cfg.geometry),
                                           attention_dropout=float(cfg.encoder_attention_dropout),
                                           double_residual=bool(cfg.double_residual), init=cfg.attention_init)
        self.decoder = AttributeDecoder(dim, int(cfg.d_ff), int(cfg.heads), float(cfg.dropout),
                                        bool(cfg.attribute_self_attention))
        self.register_buffer("geometry", relative_geometry_embedding(grid_h, grid_w, cfg.geometry_offsets),
                             persistent=False)
        self._register_classes(info)
        self.builtin_gamma = 2.0 * float(cfg.margin_size) if cfg.margin else 0.0

    def _register_classes(self, info: DatasetInfo) -> None:
        num_classes = info.num_classes
        seen = torch.zeros(num_classes, dtype=torch.bool)
        unseen = torch.zeros(num_classes, dtype=torch.bool)
        seen[torch.as_tensor(info.seen_classes, dtype=torch.long)] = True
        unseen[torch.as_tensor(info.unseen_classes, dtype=torch.long)] = True
        size = float(self.cfg.margin_size) if self.cfg.margin else 0.0
        margin = size * (unseen.float() - seen.float())
        attributes = torch.as_tensor(np.asarray(info.class_attributes), dtype=torch.float32)
        # class-level data are rebuilt from the dataset info, not stored in checkpoints
        self.register_buffer("class_attributes", attributes, persistent=False)
        self.register_buffer("margin", margin, persistent=False)
        self.register_buffer("in_play", seen | unseen, persistent=False)
        self.register_buffer("unseen_mask", unseen, persistent=False)

    # ------------------------------------------------------------------ interface
    def param_groups(self, phase: str) -> list[dict[str, Any]]:
        """Every parameter in both phases: TransZero has no warm-up (its presets set 0 warm-up epochs)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def attribute_vectors(self) -> Tensor:
        return F.normalize(self.word_vectors, dim=-1) if self.cfg.normalize_word_vectors else self.word_vectors

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        features = batch["features"]
        expected = (self.grid[0] * self.grid[1], self.channels)
        if tuple(features.shape[1:]) != expected:
            raise DataError(f"cached features are {tuple(features.shape[1:])} (regions, channels) but "
                            f"{self.cfg.backbone} at {self.cfg.img_size} px gives {expected}; the cache and "
                            "model.backbone/img_size/output_stride disagree")
        regions = self.region_proj(F.normalize(features.float(), dim=-1))
        vectors = self.attribute_vectors()
        encoded = self.encoder(regions, self.geometry)
        queries = self.attribute_proj(vectors).unsqueeze(0).expand(features.shape[0], -1, -1)
        decoded = self.decoder(queries, encoded)  # [B, A, d]
        psi = torch.einsum("ad,bad->ba", vectors @ self.w1, decoded)
        return {"attributes": psi, "scores": self.class_scores({"attributes": psi}, self.class_attributes)}

    def class_scores(self, output: dict[str, Tensor], class_attributes: Tensor) -> Tensor:
        """s = ψ · S_nᵀ (+ the margin when it is on and all classes are scored), float32 also under bf16 autocast."""
        attributes = output["attributes"]
        scores = class_logits(attributes, class_attributes.to(attributes.device))
        if class_attributes.shape[0] == self.margin.shape[0]:
            scores = scores + self.margin
        return scores

    def losses(self, output: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        scores = output["scores"].float()
        labels = batch["label"]
        blocked = torch.finfo(scores.dtype).min  # classes outside seen ∪ unseen take no part
        plain = (scores - self.margin).masked_fill(~self.in_play, blocked)
        terms = {"ce": F.cross_entropy(plain, labels)}
        if self.cfg.self_calibration_weight:
            probabilities = scores.masked_fill(~self.in_play, blocked).softmax(dim=-1)
            unseen_mass = probabilities[:, self.unseen_mask].sum(dim=-1)
            terms["self_calibration"] = float(self.cfg.self_calibration_weight) * -torch.log(unseen_mass.mean())
        if self.cfg.attribute_regression_weight:
            target = self.class_attributes[labels]
            terms["attribute_regression"] = float(self.cfg.attribute_regression_weight) * \
                F.mse_loss(output["attributes"].float(), target)
        return terms
