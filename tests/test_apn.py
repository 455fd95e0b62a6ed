"""APN-style baseline: shapes, the frozen stem/layer1, parameter groups, each loss term against its
formula, the reference's forms and their switches (double softmax, decorrelation over its body parts,
compactness after warm-up), a tiny overfit, and ``zslbench run --model apn --preset tiny``.
(Equivalence with the reference code itself: tests/test_reference_numerics.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zslbench.baselines.apn.entry import APNConfig
from zslbench.baselines.apn.groups import REFERENCE_PARTS, body_part, decorrelation_groups, reference_groups
from zslbench.baselines.apn.model import APN, attribute_decorrelation, compactness
from zslbench.core.errors import ConfigError, DataError
from zslbench.catalogue import MODELS, DatasetInfo

GROUPS = [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]


pytestmark = pytest.mark.usefixtures("single_thread")


def make_info(groups=GROUPS) -> DatasetInfo:
    rng = np.random.default_rng(0)
    attributes = rng.random((6, 10))
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    return DatasetInfo("toy", attributes.astype(np.float32), np.array([0, 1, 2, 3]), np.array([4, 5]),
                       rng.normal(size=(10, 8)).astype(np.float32), attribute_groups=groups)


def make_config(**overrides) -> APNConfig:
    # resnet10t at 32 px with output stride 8: 4×4 maps of 512 channels
    options = {"backbone": "resnet10t", "img_size": 32, "output_stride": 8, "xe": 1.0, "attri": 0.5, "l_xe": 1.0,
               "l_attri": 0.5, "regular": 1e-3, "l_regular": 1e-3, "cpt": 1e-4}
    return APNConfig(**{**options, **overrides})


def make_batch(size: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % 4
    return {"image": torch.randn(size, 3, 32, 32, generator=generator), "label": labels, "seen_label": labels}


@pytest.fixture(scope="module")
def model() -> APN:
    torch.manual_seed(0)
    return APN(make_config(), make_info())


def frozen_modules(model: APN):
    return [model.backbone.conv1, model.backbone.bn1, model.backbone.layer1]


def test_shapes_and_scores(model):
    output = model(make_batch())
    assert output["attributes"].shape == (6, 10) and output["local_attributes"].shape == (6, 10)
    assert output["similarity_maps"].shape == (6, 10, 4, 4)
    class_attributes = torch.as_tensor(make_info().class_attributes)
    torch.testing.assert_close(model.class_scores(output, class_attributes), output["attributes"] @ class_attributes.T)
    torch.testing.assert_close(output["local_attributes"], output["similarity_maps"].amax(dim=(2, 3)))


def test_global_pooling_is_max_or_avg():
    torch.manual_seed(0)
    max_model = APN(make_config(pool="max"), make_info()).eval()
    avg_model = APN(make_config(pool="avg"), make_info()).eval()
    avg_model.load_state_dict(max_model.state_dict())
    batch = make_batch()
    with torch.no_grad():
        fmap = max_model.backbone.forward_features(batch["image"])
        maps = torch.einsum("ac,bchw->bahw", max_model.global_conv, fmap)
        torch.testing.assert_close(max_model(batch)["attributes"], maps.amax(dim=(2, 3)))
        torch.testing.assert_close(avg_model(batch)["attributes"], maps.mean(dim=(2, 3)))


def test_stem_and_layer1_get_no_gradient_everything_else_does(model):
    model.train()
    model.zero_grad(set_to_none=True)
    for p in model.parameters():  # as the engine does when the full phase starts
        p.requires_grad_(True)
    batch = make_batch()
    sum(model.losses(model(batch), batch).values()).backward()
    for module in frozen_modules(model):
        assert list(module.parameters()) == []  # kept as buffers: nothing can switch them back on
        assert all(not b.requires_grad for b in module.buffers())
    # every parameter is reached (timm zero-initialises each block's last BatchNorm scale, so some
    # residual-branch gradients are exactly 0 on the first step of a random-init ResNet)
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    reached = {name for name, p in model.named_parameters() if torch.any(p.grad != 0)}
    assert {"global_conv", "prototypes", "backbone.layer2.0.bn2.weight", "backbone.layer4.0.bn2.weight"} <= reached


def test_frozen_weights_do_not_change_while_training_but_batchnorm_statistics_do():
    torch.manual_seed(0)
    model = APN(make_config(), make_info()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam([p for g in model.param_groups("full") for p in g["params"]], lr=1e-2)
    batch = make_batch()
    for _ in range(2):
        loss = sum(model.losses(model(batch), batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    for key in before:
        frozen = key.startswith(("backbone.conv1", "backbone.bn1", "backbone.layer1"))
        statistic = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
        if frozen and not statistic:
            assert torch.equal(before[key], after[key]), key
        if key == "backbone.layer1.0.bn1.running_mean":
            assert not torch.equal(before[key], after[key])  # BatchNorm stays in train mode
        if key in ("global_conv", "prototypes", "backbone.layer4.0.bn2.weight"):
            assert not torch.equal(before[key], after[key]), key


def test_parameter_groups(model):
    warmup = [p for g in model.param_groups("warmup") for p in g["params"]]
    assert len(warmup) == 2 and warmup[0] is model.global_conv and warmup[1] is model.prototypes
    full = {id(p) for g in model.param_groups("full") for p in g["params"]}
    assert full == {id(p) for p in model.parameters()}


def test_double_softmax_switch_changes_ce_as_the_reference(model):
    batch = make_batch()
    assert model.cfg.double_softmax  # the reference's form by default
    with torch.no_grad():
        output = model(batch)
        output = {**output, "attributes": 1e3 * output["attributes"]}  # confident scores: the two CEs differ
        doubled = model.losses(output, batch)["ce"]
        model.cfg.double_softmax = False
        try:
            plain = model.losses(output, batch)["ce"]
        finally:
            model.cfg.double_softmax = True
    logits = output["attributes"] @ torch.as_tensor(make_info().class_attributes)[:4].T
    torch.testing.assert_close(plain, F.cross_entropy(logits, batch["seen_label"]))
    torch.testing.assert_close(doubled, F.cross_entropy(logits.softmax(-1), batch["seen_label"]))
    # CE of probabilities is bounded: between log(1 + (C−1)/e) and log(C − 1 + e) for C = 4 seen classes
    assert math.log(1 + 3 / math.e) <= float(doubled) <= math.log(3 + math.e)
    assert abs(float(plain) - float(doubled)) > 0.1


def test_each_loss_term_is_its_weighted_formula(model):
    batch = make_batch()
    with torch.no_grad():
        output = model(batch)
        terms = model.losses(output, batch)
    assert set(terms) == {"ce", "attribute_regression", "local_ce", "local_attribute_regression", "decorrelation",
                          "local_decorrelation", "compactness"}
    target = torch.as_tensor(make_info().class_attributes)[batch["label"]]
    seen = torch.as_tensor(make_info().class_attributes)[:4]
    torch.testing.assert_close(terms["attribute_regression"], 0.5 * F.mse_loss(output["attributes"], target))
    torch.testing.assert_close(terms["local_attribute_regression"],
                               0.5 * F.mse_loss(output["local_attributes"], target))
    torch.testing.assert_close(terms["ce"], F.cross_entropy((output["attributes"] @ seen.T).softmax(-1), batch["label"]))
    torch.testing.assert_close(terms["local_ce"],
                               F.cross_entropy((output["local_attributes"] @ seen.T).softmax(-1), batch["label"]))
    frobenius = sum(torch.sqrt(model.global_conv[g].pow(2).sum() + 1e-8 * 512) for g in GROUPS)  # 512 channels
    torch.testing.assert_close(terms["decorrelation"], 1e-3 * frobenius)
    torch.testing.assert_close(terms["local_decorrelation"],
                               1e-3 * attribute_decorrelation(model.prototypes, GROUPS, "reference"))
    torch.testing.assert_close(terms["compactness"], 1e-4 * compactness(output["similarity_maps"]))


def test_zero_weights_drop_their_terms():
    model = APN(make_config(attri=0.0, l_xe=0.0, cpt=0.0), make_info())
    batch = make_batch(4)
    assert set(model.losses(model(batch), batch)) == {"ce", "local_attribute_regression", "decorrelation",
                                                      "local_decorrelation"}


def test_decorrelation_with_groups_is_the_group_wise_l21_norm_or_the_references_group_frobenius_norm():
    vectors = torch.tensor([[3.0, 0.0, 1.0],
                            [4.0, 0.0, 0.0],
                            [0.0, 2.0, 0.0],
                            [0.0, 0.0, 5.0]])
    groups = [[0, 1], [2, 3]]
    # l21: group {0, 1}: channel norms 5, 0, 1 → 6; group {2, 3}: 0, 2, 5 → 7
    assert attribute_decorrelation(vectors, groups, "l21").item() == pytest.approx(13.0, abs=1e-3)
    # reference: one norm per group, sqrt(Σ_c (Σ_a V² + 1e-8)): sqrt(26) + sqrt(29)
    assert attribute_decorrelation(vectors, groups, "reference").item() == pytest.approx(
        math.sqrt(26 + 3e-8) + math.sqrt(29 + 3e-8), rel=1e-6)
    for form in ("l21", "reference"):
        assert attribute_decorrelation(vectors, [], form).item() == pytest.approx(math.sqrt(9 + 1 + 16 + 4 + 25))


def cub_names() -> list[str]:
    """CUB's 312 attribute names by type (counts in attributes.txt order)."""
    from reference_setups import cub_attribute_names

    return cub_attribute_names()


def test_reference_groups_on_cub_are_its_seven_body_parts_with_belly_twice():
    groups = reference_groups(cub_names())
    assert REFERENCE_PARTS == ("head", "belly", "breast", "belly", "wing", "tail", "leg")
    # the sizes of the reference's attri_groups_8.json parts: head 97, belly 34, breast 34, wing 24, tail 40, leg 15
    assert [len(g) for g in groups] == [97, 34, 34, 34, 24, 40, 15]
    assert groups[1] == groups[3]  # belly counted twice
    covered = {i for g in groups for i in g}
    names = cub_names()
    # dropped: the back (upperparts/back colour/pattern) and "others" (size, shape, primary colour)
    assert {names[i].split("::")[0] for i in set(range(312)) - covered} == {
        "has_upperparts_color", "has_back_color", "has_back_pattern", "has_size", "has_shape", "has_primary_color"}
    assert body_part("has_throat_color::black") == "breast" and body_part("has_nape_color::red") == "head"


def test_which_groups_each_form_and_dataset_decorrelates_over():
    names, types = cub_names(), [list(range(0, 9)), list(range(9, 24))]
    assert len(decorrelation_groups("CUB", names, types, "reference", True)) == 7  # body parts, not types
    assert decorrelation_groups("CUB", names, types, "l21", True) == types
    assert decorrelation_groups("SUN", [], [[0, 1], [2]], "reference", True) == [[0, 1], [2]]
    assert decorrelation_groups("CUB", names, types, "reference", False) == []
    with pytest.raises(DataError, match="not a CUB attribute type"):
        decorrelation_groups("CUB", ["attr_0"] * 312, types, "reference", True)


def test_compactness_counts_only_after_warm_up_unless_asked():
    torch.manual_seed(0)
    reference = APN(make_config(), make_info())
    always = APN(make_config(compactness_in_warmup=True), make_info())
    batch = make_batch(4)
    for phase, expected in (("warmup", False), ("full", True)):
        reference.set_phase(phase)
        always.set_phase(phase)
        assert ("compactness" in reference.losses(reference(batch), batch)) is expected
        assert "compactness" in always.losses(always(batch), batch)


def test_no_groups_in_the_dataset_or_use_groups_off_means_the_frobenius_norm():
    without_groups = APN(make_config(), make_info(groups=[]))
    switched_off = APN(make_config(use_groups=False), make_info())
    for model in (without_groups, switched_off):
        batch = make_batch(4)
        terms = model.losses(model(batch), batch)
        torch.testing.assert_close(terms["local_decorrelation"], 1e-3 * model.prototypes.norm())


def test_compactness_penalises_activation_far_from_the_peak():
    maps = torch.full((1, 2, 3, 3), -50.0)  # sigmoid ≈ 0 everywhere
    maps[0, 0, 0, 0] = 10.0  # the peak of map 0 at (0, 0)
    maps[0, 0, 2, 2] = 0.0  # sigmoid 0.5 at squared distance 8
    maps[0, 1, 1, 1] = 10.0  # map 1: a lone peak costs nothing
    assert compactness(maps).item() == pytest.approx(0.5 * 8, rel=1e-4)


def test_losses_decrease_on_a_tiny_overfit():
    torch.manual_seed(0)
    # CUB's regression weights; plain CE (the reference's CE of softmaxed scores learns a tiny batch slowly)
    model = APN(make_config(attri=1e-2, l_attri=1e-1, double_softmax=False), make_info()).train()
    optimizer = torch.optim.Adam([p for g in model.param_groups("full") for p in g["params"]], lr=1e-3)
    batch = make_batch(8)
    history = []
    for _ in range(30):
        loss = sum(model.losses(model(batch), batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.5 * history[0]


def test_non_resnet_backbone_is_refused():
    with pytest.raises(ConfigError, match="not a timm ResNet"):
        APN(make_config(backbone="vit_tiny_patch16_224", output_stride=0), make_info())


def test_registered_as_an_image_model():
    assert MODELS.get("apn").model_class() is APN and MODELS.get("apn").input_kind == "image"


@pytest.mark.slow
def test_zslbench_run_tiny(tmp_path, monkeypatch):
    from zslbench.cli import main

    monkeypatch.setenv("ZSLBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    main(["run", "--model", "apn", "--preset", "tiny", "--set", "track.enabled=false",
          "--json", str(tmp_path / "r.json")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["model"] == "apn" and result["epochs"] == 2
    assert all(0.0 <= result[k] <= 1.0 for k in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h"))
    final = json.loads((tmp_path / "runs" / result["run_id"] / "final.json").read_text())
    assert final["builtin_gamma"] == 0.0
