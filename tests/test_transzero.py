"""TransZero-style baseline: shapes on any region grid, the relative-geometry term, the margin as a
built-in γ, its losses, a tiny overfit, and ``zslbench run --model transzero --preset tiny``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zslbench.baselines.transzero.entry import TransZeroConfig
from zslbench.baselines.transzero.model import TransZero, relative_geometry_embedding
from zslbench.core.errors import DataError
from zslbench.metrics import Scores, gzsl_metrics, zsl_accuracy
from zslbench.catalogue import MODELS, DatasetInfo

CHANNELS = 512  # resnet10t's last stage


pytestmark = pytest.mark.usefixtures("single_thread")


def make_info(num_attributes: int = 10, seen=(0, 1, 2, 3), unseen=(4, 5), num_classes: int = 6,
              word_dim: int = 16) -> DatasetInfo:
    rng = np.random.default_rng(0)
    attributes = rng.random((num_classes, num_attributes))
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    return DatasetInfo("toy", attributes.astype(np.float32), np.array(seen), np.array(unseen),
                       rng.normal(size=(num_attributes, word_dim)).astype(np.float32))


def make_config(grid: int = 3, **overrides) -> TransZeroConfig:
    # resnet10t has stride 32: a grid of g regions per side needs 32·g px inputs
    options = {"backbone": "resnet10t", "img_size": 32 * grid, "d_model": 16, "d_ff": 32, "dropout": 0.0,
               "encoder_attention_dropout": 0.0}
    return TransZeroConfig(**{**options, **overrides})


def features(batch: int, grid: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, grid * grid, CHANNELS, generator=torch.Generator().manual_seed(seed)).abs()


@pytest.mark.parametrize("grid", [3, 4, 7])
def test_shapes_on_several_region_grids(grid):
    info = make_info()
    model = TransZero(make_config(grid), info)
    assert model.grid == (grid, grid) and model.geometry.shape == (grid * grid, grid * grid, 64)
    output = model({"features": features(5, grid)})
    assert output["attributes"].shape == (5, info.num_attributes)
    assert output["scores"].shape == (5, info.num_classes)
    assert model.class_scores(output, torch.as_tensor(info.class_attributes)).shape == (5, info.num_classes)


def test_features_of_another_geometry_are_refused():
    model = TransZero(make_config(3), make_info())
    with pytest.raises(DataError, match="cached features are .* disagree"):
        model({"features": features(2, 4)})


# ------------------------------------------------------------------------------------------ geometry
def expected_embedding(d_row: int, d_col: int, unit_h: float, unit_w: float) -> np.ndarray:
    """The documented layout, written out independently: components (row, col, size, size) × 8 frequencies,
    sin then cos; offsets in units of ``unit`` cells, clamped at 1e-3 before the log."""
    components = [math.log(max(abs(d_row) / unit_h, 1e-3)), math.log(max(abs(d_col) / unit_w, 1e-3)), 0.0, 0.0]
    arguments = [100 * c * 1000 ** (-k / 8) for c in components for k in range(8)]
    return np.array([math.sin(a) for a in arguments] + [math.cos(a) for a in arguments])


@pytest.mark.parametrize("grid", [(3, 3), (7, 7), (2, 5)])
@pytest.mark.parametrize("offsets", ["reference", "cells"])
def test_geometry_is_the_documented_function_of_absolute_cell_offsets(grid, offsets):
    h, w = grid
    units = (h + 1, w + 1) if offsets == "reference" else (1, 1)  # the reference: log(Δ / (G + 1))
    g = relative_geometry_embedding(h, w, offsets).double().numpy()
    cells = [(r, c) for r in range(h) for c in range(w)]
    for i, (ri, ci) in enumerate(cells):
        for j, (rj, cj) in enumerate(cells):
            np.testing.assert_allclose(g[i, j], expected_embedding(ri - rj, ci - cj, *units), atol=1e-5)


def test_reference_geometry_on_the_papers_grid_measures_offsets_in_fifteenths():
    """On the reference's 14×14 grid a one-cell offset is log(1/15) (boxes of size 1/14, plus 1)."""
    g = relative_geometry_embedding(14, 14)
    argument = 100 * math.log(1 / 15)  # the row component at frequency 0 of regions (0, 0) and (1, 0)
    assert float(g[0, 14, 0]) == pytest.approx(math.sin(argument), abs=1e-6)
    assert float(g[0, 14, 32]) == pytest.approx(math.cos(argument), abs=1e-6)
    assert float(g[0, 1, 8]) == pytest.approx(math.sin(argument), abs=1e-6)  # (0, 0)–(0, 1): the column slot
    assert not torch.allclose(g, relative_geometry_embedding(14, 14, "cells"))


def test_geometry_is_symmetric_with_a_constant_diagonal_and_empty_size_slots():
    g = relative_geometry_embedding(4, 4, "cells")
    assert torch.equal(g, g.transpose(0, 1))  # |offset| makes g_ij = g_ji
    diagonal = g[torch.arange(16), torch.arange(16)]
    assert torch.equal(diagonal, diagonal[:1].expand(16, -1))  # offsets clamped to 1e-3 for every i
    assert torch.all(g[..., 16:32] == 0) and torch.all(g[..., 48:64] == 1)  # size slots: sin 0, cos 0
    # counted in cells, the same cell offset means the same embedding on a 3×3 and a 7×7 grid
    torch.testing.assert_close(relative_geometry_embedding(3, 3, "cells")[0, 5],
                               relative_geometry_embedding(7, 7, "cells")[0, 9])


def test_geometry_penalty_is_non_negative_symmetric_and_constant_on_the_diagonal():
    model = TransZero(make_config(4, heads=2), make_info())
    penalty = model.encoder.geometry_penalty(model.geometry)
    assert penalty.shape == (2, 16, 16) and torch.all(penalty >= 0)
    assert torch.equal(penalty, penalty.transpose(1, 2))
    assert torch.equal(penalty.diagonal(dim1=1, dim2=2), penalty[:, :1, :1].squeeze(-1).expand(2, 16))
    assert TransZero(make_config(4, geometry=False), make_info()).encoder.geometry_penalty(model.geometry) is None


# ------------------------------------------------------------------------------------------ encoder details
def test_encoder_attention_projections_start_xavier_uniform_with_zero_bias_per_block():
    dim = 64
    torch.manual_seed(0)
    reference = TransZero(make_config(3, d_model=dim), make_info()).encoder.attention
    torch.manual_seed(0)
    default = TransZero(make_config(3, d_model=dim, attention_init="default"), make_info()).encoder.attention
    xavier_bound, default_bound = math.sqrt(6 / (dim + dim)), 1 / math.sqrt(dim)  # per [d, d] block vs torch's
    for block in (*reference.qkv.weight.detach().chunk(3), reference.proj.weight.detach()):
        assert 0.95 * xavier_bound < float(block.abs().max()) <= xavier_bound
        assert float(block.std()) == pytest.approx(xavier_bound / math.sqrt(3), rel=0.05)
    assert torch.all(reference.qkv.bias == 0) and torch.all(reference.proj.bias == 0)
    assert float(default.qkv.weight.detach().abs().max()) <= default_bound < 0.95 * xavier_bound
    assert torch.any(default.qkv.bias != 0)


def test_encoder_attention_weights_drop_at_their_own_rate_not_the_models():
    model = TransZero(make_config(7, dropout=0.4, encoder_attention_dropout=0.1), make_info()).train()
    kept = {}

    def record(module, inputs, output):
        kept["fraction_zeroed"] = float(((output == 0) & (inputs[0] > 0)).sum() / (inputs[0] > 0).sum())

    model.encoder.attention.dropout.register_forward_hook(record)
    torch.manual_seed(0)
    model({"features": features(8, 7)})
    assert kept["fraction_zeroed"] == pytest.approx(0.1, abs=0.02)  # 8 × 49 × 49 weights
    assert model.decoder.dropout.p == 0.4 and model.encoder.dropout.p == 0.4


def test_the_encoder_adds_its_input_twice_with_double_residual():
    """x₁ = LN₁(r + attn(r)); x = LN′(r + x₁); out = LN₂(x + FFN(x)) — the reference's order (dropout off)."""
    model = TransZero(make_config(3), make_info()).eval()
    encoder, regions = model.encoder, torch.randn(2, 9, 16)
    with torch.no_grad():
        attended = encoder.attention(regions, encoder.geometry_penalty(model.geometry))
        first = encoder.norm1(regions + attended)
        twice = encoder.norm_repeat(regions + first)
        expected = encoder.norm2(twice + encoder.ffn(twice))
        torch.testing.assert_close(encoder(regions, model.geometry), expected)
        single = TransZero(make_config(3, double_residual=False), make_info()).encoder
        assert single.norm_repeat is None


# ------------------------------------------------------------------------------------------ margin = γ
@pytest.mark.parametrize("size", [1.0, 0.5])
def test_margin_at_gamma_zero_equals_margin_free_model_at_logit_gamma_two_b(size):
    info = make_info()
    with_margin = TransZero(make_config(3, margin=True, margin_size=size), info).eval()
    without = TransZero(make_config(3, margin=False), info).eval()
    without.load_state_dict(with_margin.state_dict())  # the same weights
    assert with_margin.builtin_gamma == 2 * size and without.builtin_gamma == 0.0
    rng = np.random.default_rng(1)
    seen_labels, unseen_labels = rng.choice(info.seen_classes, 40), rng.choice(info.unseen_classes, 40)
    class_attributes = torch.as_tensor(info.class_attributes)
    with torch.no_grad():
        scores = {}
        for name, model in (("margin", with_margin), ("plain", without)):
            scores[name] = [model.class_scores(model({"features": features(40, 3, seed)}), class_attributes).numpy()
                            for seed in (2, 3)]
    np.testing.assert_allclose(scores["margin"][0] - scores["plain"][0],
                               np.broadcast_to(np.array([-size] * 4 + [size] * 2), (40, 6)), atol=1e-5)

    def scored(pair):
        return Scores(scores_seen=pair[0], labels_seen=seen_labels, scores_unseen=pair[1], labels_unseen=unseen_labels,
                      seen_classes=info.seen_classes, unseen_classes=info.unseen_classes)

    margin, plain = scored(scores["margin"]), scored(scores["plain"])
    built_in, calibrated = gzsl_metrics(margin, gamma=0.0), gzsl_metrics(plain, gamma=2 * size)
    assert (built_in.u, built_in.s, built_in.h) == (calibrated.u, calibrated.s, calibrated.h)
    assert zsl_accuracy(margin) == zsl_accuracy(plain)


# ------------------------------------------------------------------------------------------ losses
def test_losses_follow_the_specification():
    info = make_info()
    cfg = make_config(3, self_calibration_weight=0.3, attribute_regression_weight=0.005)
    model = TransZero(cfg, info)
    labels = torch.tensor([0, 1, 2, 3, 1])
    batch = {"features": features(5, 3), "label": labels, "seen_label": labels}
    output = model(batch)
    terms = model.losses(output, batch)
    assert set(terms) == {"ce", "self_calibration", "attribute_regression"}
    scores, margin = output["scores"], torch.tensor([-1.0] * 4 + [1.0] * 2)
    torch.testing.assert_close(terms["ce"], F.cross_entropy(scores - margin, labels))
    unseen_mass = scores.softmax(-1)[:, 4:].sum(-1)
    torch.testing.assert_close(terms["self_calibration"], 0.3 * -torch.log(unseen_mass.mean()))
    target = torch.as_tensor(info.class_attributes)[labels]
    torch.testing.assert_close(terms["attribute_regression"], 0.005 * F.mse_loss(output["attributes"], target))


def test_classes_neither_seen_nor_unseen_take_no_part_in_the_losses():
    info = make_info(seen=(0, 1, 2), unseen=(4, 5))  # class 3 is neither (e.g. a test class during validation)
    model = TransZero(make_config(3), info)
    labels = torch.tensor([0, 1, 2, 0])
    batch = {"features": features(4, 3), "label": labels, "seen_label": labels}
    output = model(batch)
    assert torch.all(model.margin[3] == 0)
    boosted = {**output, "scores": output["scores"] + torch.tensor([0, 0, 0, 50.0, 0, 0])}
    for name, value in model.losses(boosted, batch).items():
        if name != "attribute_regression":
            torch.testing.assert_close(value, model.losses(output, batch)[name])


def test_word_vectors_are_renormalised_every_forward_when_configured():
    model = TransZero(make_config(3, normalize_word_vectors=True), make_info())
    with torch.no_grad():
        model.word_vectors.mul_(3.0)
    torch.testing.assert_close(model.attribute_vectors().norm(dim=-1), torch.ones(10))
    plain = TransZero(make_config(3), make_info())
    torch.testing.assert_close(plain.word_vectors.norm(dim=-1), torch.ones(10))  # initialised normalised
    assert plain.w1.shape == (16, 16)


def test_losses_decrease_on_a_tiny_overfit():
    info = make_info()
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    batch = {"features": features(8, 3), "label": labels, "seen_label": labels}
    first, last = [], []
    for seed in range(3):  # averaged over initialisations: one of them may start on a plateau
        torch.manual_seed(seed)
        model = TransZero(make_config(3), info)
        optimizer = torch.optim.Adam([p for g in model.param_groups("warmup") for p in g["params"]], lr=3e-3)
        assert sum(p.numel() for g in model.param_groups("full") for p in g["params"]) == \
            sum(p.numel() for p in model.parameters())
        history = []
        for _ in range(60):
            loss = sum(model.losses(model(batch), batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
        first.append(history[0])
        last.append(history[-1])
    assert sum(last) < 0.5 * sum(first)


def test_registered_as_a_feature_model():
    assert MODELS.get("transzero").model_class() is TransZero and MODELS.get("transzero").input_kind == "features"


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_zslbench_run_tiny(tmp_path, monkeypatch):
    from zslbench.cli import main

    monkeypatch.setenv("ZSLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    main(["run", "--model", "transzero", "--preset", "tiny", "--set", "track.enabled=false",
          "--json", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["model"] == "transzero" and result["epochs"] == 2
    assert all(0.0 <= result[k] <= 1.0 for k in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h"))
    final = json.loads((tmp_path / "runs" / result["run_id"] / "final.json").read_text())
    assert final["builtin_gamma"] == 2.0
    caches = list((tmp_path / "data" / "synth-tiny" / ".cache" / "features").glob("*/meta.json"))
    assert len(caches) == 1 and json.loads(caches[0].read_text())["complete"] is True
