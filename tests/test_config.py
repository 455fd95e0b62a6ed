"""The config tree: resolution order, overrides, errors, YAML round trip."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from zslbench.ablations import patches_for
from zslbench.baselines.vit.entry import ViTConfig
from zslbench.config import Config, resolve
from zslbench.svip.entry import SVIPConfig
from zslbench.core.errors import ConfigError, UserError


def test_library_defaults_then_dataset_preset():
    cub = resolve(model="svip", dataset="CUB")
    awa = resolve(model="svip", dataset="AWA2")
    sun = resolve(model="svip", dataset="SUN")
    assert (cub.model.keep, cub.train.epochs, cub.train.lr, cub.train.betas) == (40, 30, 3e-5, (0.5, 0.999))
    assert (awa.model.keep, awa.model.patch_cls_weight, awa.model.att_dec, awa.train.betas[0]) == (45, 4.0, 1.0, 0.8)
    assert (sun.train.epochs, sun.train.warmup_lr, sun.train.lr) == (50, 1e-4, 1e-5)
    assert cub.model.backbone == "vit_base_patch16_224" and cub.model.img_size == 224


def test_order_preset_then_ablation_then_override():
    cfg = resolve("svip", "CUB", preset="tiny", ablations=patches_for(["no_js"], "svip"),
                  overrides=["train.epochs=5", "model.consistency=jsd"])
    assert cfg.model.img_size == 32  # preset over the dataset preset
    assert cfg.train.epochs == 5  # override over preset
    assert cfg.model.consistency == "jsd"  # override over ablation
    assert cfg.ablations == ["no_js"] and cfg.preset == "tiny"


def test_baseline_ablation_switches_to_vit_keeping_backbone():
    cfg = resolve("svip", "synth", ablations=patches_for(["baseline"], "svip"))
    assert isinstance(cfg.model, ViTConfig)
    assert cfg.model.img_size == 64 and cfg.model.embed_dim == 96


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key 'train.lrr'; valid keys in 'train': epochs"),
        ("trian.lr=1", "unknown config section 'trian'"),
        ("train.epochs=abc", "train.epochs='abc' must be an integer"),
        ("train.epochs=2.5", "must be an integer"),
        ("train.lr=nan", "must be a finite number"),
        ("model.rollout=fancy", "valid choices: reference, paper"),
        ("eval.gamma_policy=best", "valid choices: none, fixed, val, oracle"),
        ("train.betas=[0.9]", "must be a list of 2 values"),
        ("train.epochs=0", "train.epochs must be at least 1"),
        ("model.img_size=40", "odd patch grid"),
        ("lr", "is not of the form key=value"),
        ("model.name=resnet", "unknown model 'resnet'"),
        ("train.drop_last=maybe", "must be true or false"),
    ],
)
def test_bad_overrides_name_the_key_and_the_choices(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve(overrides=[override])


def test_unknown_dataset_and_preset():
    with pytest.raises(ConfigError, match="unknown dataset 'CUBB'; valid choices: synth, CUB, AWA2, SUN"):
        resolve(dataset="CUBB")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        resolve(preset="huge")


def test_ablation_conflicts_and_applicability():
    with pytest.raises(UserError, match="conflict: both set model.contextualize"):
        patches_for(["no_replacement", "replace"], "svip")
    with pytest.raises(UserError, match="cannot be combined"):
        patches_for(["baseline", "no_js"], "svip")
    with pytest.raises(UserError, match="applies to model"):
        patches_for(["no_js"], "vit")
    with pytest.raises(UserError, match="unknown ablation 'no_jss'.*Did you mean 'no_js'"):
        patches_for(["no_jss"], "svip")


@pytest.mark.parametrize("dataset", ["synth", "CUB", "AWA2", "SUN"])
@pytest.mark.parametrize("preset", [None, "tiny", "quick", "paper"])
def test_yaml_round_trip_is_identical(dataset, preset, tmp_path):
    cfg = resolve("svip", dataset, preset=preset, ablations=patches_for(["no_js", "jsd"][:1], "svip"))
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    loaded = Config.from_yaml(path)
    assert loaded == cfg
    assert resolve(base=loaded) == cfg


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"train": {"epochz": 3}}))
    with pytest.raises(ConfigError, match="unknown config key 'train.epochz'"):
        Config.from_yaml(wrong)


def test_flat_has_dotted_keys():
    flat = resolve().flat()
    assert flat["model.name"] == "svip" and flat["train.epochs"] == 12 and "eval.gamma_policy" in flat


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["train.lr", "train.epochs", "model.keep", "model.rollout", "train.betas",
                            "eval.gamma", "data.dataset", "train.drop_last", "x", "train.", ".lr"]),
       value=st.one_of(st.text(max_size=12), st.integers(), st.floats(allow_nan=True), st.booleans(),
                       st.lists(st.floats(), max_size=3)))
def test_override_fuzz_gives_valid_config_or_clean_error(key, value):
    try:
        cfg = resolve(overrides=[f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"])
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(cfg.model, SVIPConfig)
