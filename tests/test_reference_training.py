"""Each model's reference training loop (``train.quirks=reference``), the batch draws of ``train.sampling``, and
the paper presets: what the reference code does, checked through the trainer and the batch sources on the tiny
synthetic benchmark, and the reference settings ``run --dry-run`` shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zslbench.backbones.config import VIT_REFERENCE_LOOP
from zslbench.catalogue import CLEAN_LOOP, MODELS, build_model
from zslbench.config import Config, resolve
from zslbench.core.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def trainer_for(model: str, root, tmp_path, *overrides: str):
    from zslbench.engine.run_data import load_run_data
    from zslbench.engine.trainer import EvalSets, Trainer

    cfg = resolve(model, "synth", "tiny", overrides=[f"data.root={root}", "train.max_steps_per_epoch=2", *overrides])
    data = load_run_data(cfg)
    torch.manual_seed(0)
    net = build_model(cfg, data.info)
    split = data.split
    return Trainer(cfg, data, net, torch.device("cpu"), split.split("trainval"),
                   EvalSets(split.split("test_seen"), split.split("test_unseen")), tmp_path / "run"), net


def adam_steps(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> int:
    return int(optimizer.state[param]["step"])


# ------------------------------------------------------------------------------------------ the loops
def test_each_model_declares_its_reference_loop():
    assert MODELS.get("svip").reference_loop == VIT_REFERENCE_LOOP == MODELS.get("vit").reference_loop
    assert (VIT_REFERENCE_LOOP.recreate_optimizer, VIT_REFERENCE_LOOP.warmup_gradient_buildup,
            VIT_REFERENCE_LOOP.shuffle, VIT_REFERENCE_LOOP.anomaly_detection) == ("full", True, False, True)
    apn = MODELS.get("apn").reference_loop
    assert (apn.recreate_optimizer, apn.warmup_gradient_buildup, apn.shuffle, apn.anomaly_detection) == \
        ("every_epoch", False, True, False)
    assert MODELS.get("transzero").reference_loop == CLEAN_LOOP  # TransZero's script trains as the clean loop


@pytest.mark.parametrize("quirks", ["reference", "clean"])
def test_apn_reference_loop_starts_a_new_adam_every_epoch_of_both_phases(root, tmp_path, quirks):
    """APN's main.py builds its Adam inside the epoch loop, in warm-up and after: the moments restart every epoch."""
    trainer, net = trainer_for("apn", root, tmp_path, "train.epochs=4", "train.warmup_epochs=2",
                               f"train.quirks={quirks}")
    optimizers, steps = [], []
    for epoch in range(4):
        trainer.train_epoch(epoch)
        optimizers.append(trainer.optimizer)
        steps.append(adam_steps(trainer.optimizer, net.global_conv))
    if quirks == "reference":
        assert len({id(o) for o in optimizers}) == 4 and steps == [2, 2, 2, 2]
    else:  # one optimizer per phase, its moments kept across the phase's epochs
        assert optimizers[0] is optimizers[1] and optimizers[2] is optimizers[3] and optimizers[1] is not optimizers[2]
        assert steps == [2, 4, 2, 4]


def test_apn_reference_loop_freezes_the_backbone_in_warm_up_and_zeroes_every_gradient(root, tmp_path):
    trainer, net = trainer_for("apn", root, tmp_path, "train.epochs=2", "train.warmup_epochs=1")
    assert trainer.loop.recreate_optimizer == "every_epoch" and not trainer.loop.warmup_gradient_buildup
    body = net.backbone.layer2[0].conv1.weight
    before = body.detach().clone()
    trainer.train_epoch(0)
    assert body.grad is None and torch.equal(body.detach(), before)  # no build-up into the first full step
    trainer.train_epoch(1)
    assert not torch.equal(body.detach(), before)


def test_apn_compactness_joins_the_loss_after_warm_up(root, tmp_path):
    trainer, _ = trainer_for("apn", root, tmp_path, "train.epochs=2", "train.warmup_epochs=1", "model.cpt=1e-4")
    warmup, full = trainer.train_epoch(0), trainer.train_epoch(1)
    assert "train/compactness" not in warmup and full["train/compactness"] > 0


def test_svip_reference_loop(root, tmp_path):
    """SVIP's main.py: an unshuffled loader, anomaly detection, backbone gradients built up over warm-up (only the
    heads' are zeroed), a new Adam at every epoch after warm-up."""
    trainer, net = trainer_for("svip", root, tmp_path, "train.epochs=3", "train.warmup_epochs=1",
                               "train.quirks=reference")
    anomaly = []
    losses = net.losses
    net.losses = lambda output, batch: anomaly.append(torch.is_anomaly_enabled()) or losses(output, batch)
    first = next(iter(trainer.train_batches))["index"].tolist()
    assert first == sorted(first) and first[0] == int(np.min(trainer.data.split.split("trainval")))  # in order
    body = net.vit.blocks[0].attn.qkv.weight
    before = body.detach().clone()
    trainer.train_epoch(0)
    built_up = body.grad.detach().clone()  # two warm-up steps' gradients, never zeroed, never applied
    assert torch.equal(body.detach(), before) and float(built_up.norm()) > 0
    optimizers = []
    for epoch in (1, 2):
        trainer.train_epoch(epoch)
        optimizers.append(trainer.optimizer)
    assert optimizers[0] is not optimizers[1] and adam_steps(optimizers[1], body) == 2
    assert anomaly and all(anomaly)


def test_svip_clean_loop_shuffles_and_keeps_its_optimizer(root, tmp_path):
    trainer, net = trainer_for("svip", root, tmp_path, "train.epochs=3", "train.warmup_epochs=1")
    assert trainer.loop == CLEAN_LOOP
    trainer.train_epoch(0)
    assert net.vit.blocks[0].attn.qkv.weight.grad is None  # frozen while the heads warm up
    trainer.train_epoch(1)
    optimizer = trainer.optimizer
    trainer.train_epoch(2)
    assert trainer.optimizer is optimizer and adam_steps(optimizer, net.vit.blocks[0].attn.qkv.weight) == 4


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("cache_images", [True, False])
def test_balanced_batches_draw_ways_classes_of_distinct_images(root, cache_images):
    """APN's ZSL episodes (8 classes × 3 images, 300 batches), here 3 × 2 and 5 batches."""
    from zslbench.engine.batches import make_batches
    from zslbench.engine.run_data import load_run_data

    cfg = resolve("apn", "synth", "tiny", overrides=[f"data.root={root}", f"data.cache_images={cache_images}",
                                                     "train.sampling=balanced", "train.ways=3", "train.batch_size=6",
                                                     "train.batches_per_epoch=5"])
    data = load_run_data(cfg)
    source = make_batches(cfg, data, data.split.split("trainval"), train=True, device=torch.device("cpu"))
    torch.manual_seed(0)
    if getattr(source, "generator", None) is not None:
        source.generator.manual_seed(0)
    batches = list(source)
    assert len(source) == len(batches) == 5
    for batch in batches:
        labels, index = batch["label"].tolist(), batch["index"].tolist()
        assert len(index) == 6 and len(set(index)) == 6 and batch["global_size"] == 6
        assert sorted(labels.count(c) for c in set(labels)) == [2, 2, 2]


def test_random_batches_are_fresh_draws_of_distinct_images(root):
    """TransZero's CUB loop: every batch a new random draw, so an epoch's batches may share images."""
    from zslbench.engine.batches import make_batches
    from zslbench.engine.run_data import load_run_data

    cfg = resolve("svip", "synth", "tiny", overrides=[f"data.root={root}", "train.sampling=random",
                                                      "train.batch_size=8"])
    data = load_run_data(cfg)
    trainval = data.split.split("trainval")
    source = make_batches(cfg, data, trainval, train=True, device=torch.device("cpu"))
    torch.manual_seed(0)
    batches = [b["index"].tolist() for b in source]
    assert len(batches) == len(trainval) // 8
    assert all(len(b) == 8 == len(set(b)) for b in batches)
    seen = [i for b in batches for i in b]
    assert len(set(seen)) < len(seen)  # some image drawn twice in one epoch: not a permutation


def test_sampling_draws_follow_the_generator():
    from zslbench.engine.sampling import Sampling

    labels = np.repeat(np.arange(10), 5)
    for sampling in (Sampling("balanced", ways=4), Sampling("random"), Sampling("shuffle")):
        draw = lambda seed: [b.tolist() for b in sampling.batches(labels, 8, torch.Generator().manual_seed(seed),  # noqa: E731
                                                                  drop_last=True)]
        assert draw(1) == draw(1) and draw(1) != draw(2)
    few = np.array([0, 0, 1, 1, 1, 1])  # class 0 has two images: three shots of it must repeat one
    plan = Sampling("balanced", ways=2).batches(few, 6, torch.Generator().manual_seed(0), drop_last=False)
    assert all(sorted(np.bincount(few[b]).tolist()) == [3, 3] for b in plan)


def test_sampling_settings_that_would_do_nothing_are_refused():
    with pytest.raises(ConfigError, match="train.ways=8 sets the classes of a balanced batch"):
        resolve("apn", "CUB", overrides=["train.ways=8"])
    with pytest.raises(ConfigError, match="train.batches_per_epoch=300 applies to train.sampling=balanced"):
        resolve("apn", "CUB", overrides=["train.batches_per_epoch=300"])
    with pytest.raises(ConfigError, match="more classes than train.batch_size"):
        resolve("apn", "CUB", overrides=["train.sampling=balanced", "train.ways=80"])


def test_a_saved_config_with_balanced_batches_still_loads():
    assert Config.from_dict({"train": {"balanced_batches": True}}).train.sampling == "balanced"
    assert Config.from_dict({"train": {"balanced_batches": "false"}}).train.sampling == "shuffle"


# ------------------------------------------------------------------------------------------ paper presets
def settings(model: str, dataset: str, preset: str = "paper") -> dict:
    return resolve(model, dataset, preset).flat()


APN_COMMON = {"model.double_softmax": True, "model.decorrelation": "reference", "model.compactness_in_warmup": False,
              "train.quirks": "reference", "train.optimizer": "adam", "train.betas": [0.5, 0.999], "train.epochs": 30,
              "train.lr_decay": 0.8, "train.lr_decay_every": 10, "train.grad_clip": 0.0,
              "model.backbone": "resnet101", "model.img_size": 224, "model.pretrained": "paper", "train.amp": "off"}


@pytest.mark.parametrize("dataset, preset, expected", [
    # script/CUB_GZSL.sh: --pretrain_epoch 5 (epochs 0..5 warm up) --regular 5e-5 --manualSeed 3131, shuffled 64
    ("CUB", "paper", {"model.regular": 5e-5, "train.warmup_epochs": 6, "train.sampling": "shuffle",
                      "train.batch_size": 64, "train.seed": 3131, "model.l_xe": 1.0, "model.cpt": 1e-9,
                      "model.use_groups": True, "model.pool": "max", "train.warmup_lr": 1e-4, "train.lr": 1e-6}),
    # script/CUB_ZSL.sh: --pretrain_epoch 4 --regular 5e-6 --train_mode distributed --n_batch 300 --ways 8 --shots 3
    ("CUB", "paper-zsl", {"model.regular": 5e-6, "train.warmup_epochs": 5, "train.sampling": "balanced",
                          "train.batch_size": 24, "train.ways": 8, "train.batches_per_epoch": 300,
                          "train.seed": 4896}),
    ("AWA2", "paper", {"model.l_xe": 1.0, "train.seed": 7048, "model.use_groups": False, "model.pool": "avg",
                       "train.warmup_epochs": 3, "train.lr": 1e-7, "model.l_regular": 5e-7}),
    ("AWA2", "paper-zsl", {"model.l_xe": 0.0, "train.seed": 8275}),
    ("SUN", "paper", {"train.seed": 2347, "train.warmup_epochs": 5, "train.warmup_lr": 1e-3, "model.cpt": 2e-7}),
    ("SUN", "paper-zsl", {"train.seed": 6585, "model.l_xe": 1.0}),
])
def test_apn_paper_presets_are_its_scripts(dataset, preset, expected):
    got = settings("apn", dataset, preset)
    wanted = {**APN_COMMON, **expected}
    assert {k: got[k] for k in wanted} == wanted


@pytest.mark.parametrize("dataset, preset, expected", [
    ("CUB", "paper", {"model.d_model": 300, "model.dropout": 0.4, "train.sampling": "random", "train.seed": 5,
                      "train.optimizer": "adam", "model.self_calibration_weight": 0.3}),
    ("CUB", "paper-zsl", {"model.d_model": 300, "train.sampling": "random", "train.seed": 5}),  # one config for both
    ("AWA2", "paper", {"model.d_model": 300, "model.self_calibration_weight": 2.0,
                       "model.attribute_regression_weight": 5e-4, "model.dropout": 0.5, "train.seed": 17,
                       "train.sampling": "balanced", "train.optimizer": "sgd"}),
    ("AWA2", "paper-zsl", {"model.d_model": 512, "model.self_calibration_weight": 1.2,
                           "model.attribute_regression_weight": 5e-5, "model.dropout": 0.3, "train.seed": 9093}),
    ("SUN", "paper", {"model.attribute_regression_weight": 1e-3, "train.seed": 6, "train.momentum": 0.9}),
    ("SUN", "paper-zsl", {"model.attribute_regression_weight": 5e-3, "train.seed": 6}),
])
def test_transzero_paper_presets_are_its_configurations(dataset, preset, expected):
    reference_forms = {"model.double_residual": True, "model.encoder_attention_dropout": 0.1,
                       "model.attention_init": "xavier", "model.geometry_offsets": "reference",
                       "model.backbone": "resnet101", "model.img_size": 448}
    got = settings("transzero", dataset, preset)
    wanted = {**reference_forms, **expected}
    assert {k: got[k] for k in wanted} == wanted


@pytest.mark.parametrize("model, dataset, lines", [
    ("apn", "CUB", ["eval.mode=apn", "--preset paper-zsl", "training loop: reference", "double_softmax: true",
                    "decorrelation: reference", "quirks: reference", "regular: 5.0e-05", "seed: 3131"]),
    ("transzero", "AWA2", ["eval.mode=transzero", "--preset paper-zsl", "double_residual: true",
                           "encoder_attention_dropout: 0.1", "geometry_offsets: reference", "sampling: balanced"]),
])
def test_dry_run_shows_the_reference_settings_and_the_papers_reporting_mode(capsys, model, dataset, lines):
    from zslbench.cli import main

    main(["run", "--model", model, "--dataset", dataset, "--preset", "paper", "--dry-run"])
    shown = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert all(line in shown for line in lines), [line for line in lines if line not in shown]
