"""Whether the real-data image pipeline keeps an SVIP step fed: JPEG decode + transform per core.

Stand-in JPEGs of CUB's typical size (500 × 375, photograph-like noise at quality 90) go through what a
DataLoader worker does per image on a real dataset: ``decode_image`` then CUB's training transform
(Resize(256) → CenterCrop(224) → HFlip, as the engine builds it with :func:`zslbench.data.images.build_transform`).
Beside it, an SVIP training step at CUB's paper geometry (ViT-B/16, 224 px, batch 4; quick mode: the tiny
preset) on this machine's CPU. Figures: images/s of one core's decoding, images/s of the step, and their ratio —
how many cores feed one step; on a GPU the step is far faster, and ``data.num_workers`` (default: one worker
per core, up to 8, shared among the ranks of a machine) is what meets it.
"""

from __future__ import annotations

import pytest

from bench_models import cub_like_info, image_batch, training_step
from bench_timing import SideBySide, cpu_seconds

pytestmark = pytest.mark.benchmark(group="jpeg", timer=cpu_seconds)

CUB_SIZE = (500, 375)
BATCH = 4


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory, quick):
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8 if quick else 32):
        base = rng.integers(0, 256, size=3)
        pixels = np.clip(base + rng.normal(0, 40, (CUB_SIZE[1], CUB_SIZE[0], 3)), 0, 255).astype(np.uint8)
        path = folder / f"{index:03d}.jpg"
        Image.fromarray(pixels).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def test_jpeg_decode_per_core_over_svip_step(benchmark, recorder, jpegs, quick):
    import torch

    from zslbench.catalogue import build_model
    from zslbench.config import resolve
    from zslbench.data.images import build_transform, decode_image

    transform = build_transform("CUB", True, 224, "dataset")
    preset = ("synth", "tiny") if quick else ("CUB", None)
    cfg = resolve("svip", preset[0], preset[1], overrides=["model.pretrained=none"])
    info = cub_like_info()
    torch.manual_seed(0)
    model = build_model(cfg, info)
    optimizer = torch.optim.Adam([p for g in model.param_groups("full") for p in g["params"]], lr=1e-5)
    step = training_step(model, optimizer, grad_clip=1.0)
    images = image_batch(BATCH, cfg.model.img_size, len(info.seen_classes))

    def decode_all() -> None:
        for path in jpegs:
            transform(decode_image(path))

    pair = SideBySide({"decode": decode_all, "svip_step": lambda: step(images)})
    pair.warm_up()
    benchmark.pedantic(pair.round, rounds=1 if quick else 3, iterations=1)
    decode_rate = len(jpegs) / pair.median("decode")
    step_rate = BATCH / pair.median("svip_step")
    recorder.record("jpeg_per_core_over_svip_step", decode_rate / step_rate, rounds=pair.rounds,
                    config=f"CUB train transform on {len(jpegs)} stand-in {CUB_SIZE[0]}×{CUB_SIZE[1]} JPEGs; "
                           f"svip {cfg.model.backbone} at {cfg.model.img_size} px, batch {BATCH}",
                    decode_images_per_core_s=round(decode_rate, 1), svip_step_images_per_cpu_s=round(step_rate, 2),
                    cores_per_step=round(step_rate / decode_rate, 3), sides=pair.summary())
