"""Pretrained weights: specs, the hub caches, fetching and verifying them over loopback HTTP, loading them into a
backbone, and the run pre-flight that stops before anything is created when they are missing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from zslbench.backbones import weights as bw
from tests.loopback import serve_folder
from zslbench.core.errors import ConfigError, UserError

TAG = "vit_base_patch16_224.orig_in21k_ft_in1k"
TINY = dict(backbone="vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty hub caches of this test (and downloads off unless a test turns them on)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("ZSLBENCH_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def http_folder(tmp_path):
    """A loopback HTTP server over a folder: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serve_folder(folder) as base:
        yield folder, base


def tiny_state(path: Path, seed: int = 3) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                              **{k: v for k, v in TINY.items() if k != "backbone"})
    state = model.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- specs and caches
def test_specs_parse_and_describe():
    assert bw.parse("paper", TAG) == bw.WeightsSpec("timm", TAG, paper=True)
    assert bw.parse("none").kind == bw.parse("").kind == "none"  # "" is how configs saved before said none
    assert bw.parse("timm:resnet101.tv_in1k").tag == "resnet101.tv_in1k"
    assert bw.parse("/w/vit.pth").path == Path("/w/vit.pth") and bw.parse("hub").kind == "hub"
    with pytest.raises(ConfigError, match="names no paper weights"):
        bw.parse("paper", "")
    with pytest.raises(ConfigError, match="timm pretrained tag"):
        bw.parse("timm:resnet101")
    assert bw.describe(bw.parse("none")) == "random init"


def test_published_file_names_carry_their_sha256_prefix():
    assert bw.PUBLISHED[TAG].filename == "jx_vit_base_p16_224-80ecf9dd.pth"
    assert bw.PUBLISHED[TAG].sha256_prefix == "80ecf9dd"
    assert bw.PUBLISHED["resnet101.tv_in1k"].sha256_prefix == "63fe2227"


def test_timm_tags_resolve_from_the_hugging_face_cache_then_the_torch_cache(caches):
    spec = bw.parse("paper", TAG)
    with pytest.raises(UserError) as caught:
        bw.local_file(spec)
    message = str(caught.value)
    assert "are not on this machine" in message and "zslbench data fetch weights" in message
    assert "--set model.pretrained=PATH" in message and str(bw.torch_checkpoints()) in message
    torch_file = bw.torch_checkpoints() / "jx_vit_base_p16_224-80ecf9dd.pth"
    torch_file.parent.mkdir(parents=True)
    torch_file.write_bytes(b"x")
    assert bw.local_file(spec) == torch_file
    hf_file = caches / "hf" / "hub" / f"models--timm--{TAG}" / "snapshots" / "abc123" / "model.safetensors"
    hf_file.parent.mkdir(parents=True)
    hf_file.write_bytes(b"y")
    assert bw.local_file(spec) == hf_file  # timm's own download wins


# --------------------------------------------------------------------------- loading
def test_paper_weights_from_the_cache_are_what_the_backbone_starts_from(caches):
    from zslbench.backbones.vit import build_vit
    from zslbench.baselines.vit.entry import ViTConfig

    state = tiny_state(bw.torch_checkpoints() / bw.PUBLISHED[TAG].filename)
    loaded = build_vit(ViTConfig(**TINY, pretrained="paper")).state_dict()
    assert torch.equal(loaded["blocks.1.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])
    random = build_vit(ViTConfig(**TINY, pretrained="none")).state_dict()
    assert not torch.equal(random["blocks.1.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])


# --------------------------------------------------------------------------- fetching
def test_fetch_weights_over_http_with_a_checksum(caches, http_folder):
    from zslbench.data.fetch.files import fetch_weights

    folder, base = http_folder
    tiny_state(folder / "standin.pth")
    digest = sha256(folder / "standin.pth")
    [path] = fetch_weights(["svip"], url=f"{base}/standin.pth", sha256=digest)
    assert path == bw.torch_checkpoints() / bw.PUBLISHED[TAG].filename and sha256(path) == digest
    with pytest.raises(UserError, match="--url names one weights file: pass --model too"):
        fetch_weights([], url=f"{base}/standin.pth")


def test_a_fetched_file_whose_hash_does_not_match_its_published_name_is_deleted(caches, http_folder):
    from zslbench.data.fetch.files import fetch_weights

    folder, base = http_folder
    tiny_state(folder / "standin.pth")
    with pytest.raises(UserError, match="its published name says 80ecf9dd"):
        fetch_weights(["vit"], url=f"{base}/standin.pth")
    assert not (bw.torch_checkpoints() / bw.PUBLISHED[TAG].filename).exists()


def test_a_run_downloads_missing_published_weights_when_online_and_verifies_them(caches, http_folder, monkeypatch):
    from zslbench.data.fetch.files import ensure_weights

    folder, base = http_folder
    tiny_state(folder / "good.pth")
    name = f"good-{sha256(folder / 'good.pth')[:8]}.pth"
    (folder / "good.pth").rename(folder / name)
    monkeypatch.setitem(bw.PUBLISHED, TAG, bw.PublishedWeights(f"{base}/{name}", "stand-in"))
    spec = bw.parse("paper", TAG)
    with pytest.raises(UserError, match="downloads are off"):
        ensure_weights(spec)  # $ZSLBENCH_OFFLINE=1
    monkeypatch.delenv("ZSLBENCH_OFFLINE")
    assert ensure_weights(spec) == bw.torch_checkpoints() / name
    monkeypatch.setitem(bw.PUBLISHED, "resnet101.tv_in1k", bw.PublishedWeights(f"{base}/absent-0000.pth", "gone"))
    with pytest.raises(UserError, match="not on this machine \\(the download failed"):
        ensure_weights(bw.parse("paper", "resnet101.tv_in1k"))


# --------------------------------------------------------------------------- the run's pre-flight
@pytest.mark.shared
def test_a_cub_run_without_its_paper_weights_stops_before_creating_anything(shared_data, caches, tmp_path,
                                                                              monkeypatch, capsys):
    from tests.cub_layout import build_cub_root
    from zslbench.cli import main

    root = build_cub_root(shared_data, tmp_path / "zsl")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tiny_vit = [f"model.{k}={v}" for k, v in TINY.items()] + ["model.keep=3", "train.epochs=1", "train.warmup_epochs=0",
                                                             "train.threads=1"]
    args = ["run", "--dataset", "CUB", "--data-root", str(root), *[a for o in tiny_vit for a in ("--set", o)]]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "the weights paper: timm vit_base_patch16_224.orig_in21k_ft_in1k" in err and "model.pretrained=PATH" in err
    assert sorted(p.name for p in work.iterdir()) == []  # no MLflow store, no run folder

    main([*args, "--set", "model.pretrained=none", "--json", "out.json"])  # random init only when asked …
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_runs(["1"])[0]
    assert run.data.tags["zslbench.random_init"] == "true" and run.data.tags["zslbench.weights"] == "random init"
    assert run.data.tags["zslbench.precision"] == "fp32"  # … and marked, in the paper configuration's fp32
    assert run.data.tags["zslbench.word_vectors"] == "word2vec file attribute_w2v.npy"
