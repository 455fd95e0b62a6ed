"""Whether the synthetic image pipeline keeps an SVIP training step fed.

The default synth SVIP config (64 px, batch 64; quick mode: the tiny preset). The synthetic
benchmark is generated into a temporary data root with ``ensure_synth``; the engine's own batch
source (``load_run_data`` → ``make_batches``: images decoded once, then batches sliced, flipped and
normalised in memory) delivers whole training epochs, and the default model trains steps on
batches from it. Both are measured side by side on the CPU clock; the figure is the ratio of their
images per second. One-off costs — generating the dataset, decoding and resizing the images into
memory — are reported beside it.
"""

from __future__ import annotations

import pytest

from bench_models import training_step
from bench_timing import SideBySide, cpu_seconds, wall_seconds

pytestmark = pytest.mark.benchmark(group="data", timer=cpu_seconds)


@pytest.fixture(scope="module")
def pipeline(synth_root, quick):
    import torch

    from zslbench.config import resolve
    from zslbench.data.synth import ensure_synth
    from zslbench.engine.batches import make_batches
    from zslbench.engine.run_data import load_run_data
    from zslbench.catalogue import build_model

    cfg = resolve("svip", "synth", "tiny" if quick else None, overrides=[f"data.root={synth_root}"])
    one_off = {}
    cpu, wall = cpu_seconds(), wall_seconds()
    ensure_synth(synth_root, preset=cfg.data.synth_preset, seed=cfg.data.synth_seed)
    one_off["synth_generate_cpu_s"], one_off["synth_generate_wall_s"] = cpu_seconds() - cpu, wall_seconds() - wall

    data = load_run_data(cfg)
    trainval = data.split.split("trainval")
    cpu = cpu_seconds()
    batches = make_batches(cfg, data, trainval, train=True, device=torch.device("cpu"))
    one_off["decode_into_memory_cpu_s"] = cpu_seconds() - cpu

    torch.manual_seed(0)
    model = build_model(cfg, data.info)
    t = cfg.train
    optimizer = torch.optim.Adam(model.param_groups("full"), lr=t.lr, betas=tuple(t.betas))
    return {"cfg": cfg, "batches": batches, "trainval": len(trainval), "one_off": one_off,
            "step": training_step(model, optimizer, grad_clip=t.grad_clip)}


def test_data_over_train(benchmark, recorder, pipeline, quick):
    import torch

    from zslbench.engine.batches import to_device

    batches, step = pipeline["batches"], pipeline["step"]
    cpu = torch.device("cpu")
    steps_per_round = 1 if quick else 3
    held = []
    for batch in batches:  # batches for the training side, drawn from the same pipeline
        held.append(to_device(batch, cpu))
        if len(held) == steps_per_round:
            break
    epoch_images = []

    def pipeline_epoch() -> None:  # as the engine walks it: slices, flips, then onto the device (normalised there)
        epoch_images.append(sum(int(to_device(batch, cpu)["label"].shape[0]) for batch in batches))

    def train_steps() -> None:
        for batch in held:
            step(batch)

    pair = SideBySide({"pipeline_epoch": pipeline_epoch, "train_steps": train_steps})
    pair.warm_up()
    benchmark.pedantic(pair.round, rounds=1 if quick else 3, iterations=1)

    images_per_epoch = epoch_images[-1]
    data_rate = images_per_epoch / pair.median("pipeline_epoch")
    train_rate = sum(int(b["label"].shape[0]) for b in held) / pair.median("train_steps")
    one_off = pipeline["one_off"]
    first_epoch_rate = images_per_epoch / (one_off["decode_into_memory_cpu_s"] + pair.median("pipeline_epoch"))
    cfg = pipeline["cfg"]
    recorder.record("data_over_train", data_rate / train_rate, rounds=pair.rounds,
                    config=f"svip on synth preset {cfg.data.synth_preset} ({cfg.model.img_size} px, "
                           f"batch {cfg.train.batch_size})",
                    pipeline_images_per_cpu_s=round(data_rate, 1), train_images_per_cpu_s=round(train_rate, 2),
                    first_epoch_images_per_cpu_s_with_decoding=round(first_epoch_rate, 1),
                    first_epoch_over_train=round(first_epoch_rate / train_rate, 2),
                    trainval_images=pipeline["trainval"], images_per_epoch=images_per_epoch,
                    train_steps_per_round=len(held),
                    one_off={k: round(v, 3) for k, v in one_off.items()}, sides=pair.summary())
