"""SVIP's cost over the plain ViT baseline, per training step and per inference step.

Paper geometry (full mode): ViT-B/16 at 224 px, random init, batch 4, a CUB-shaped dataset info
(312 attributes in 28 groups, 150 seen / 50 unseen classes) — the CUB presets of both models.
SVIP runs the backbone twice per training step (the source pass with attention maps for the
rollout, then the contextualised pass), so its training step may cost about twice the ViT's; its
inference must cost about the same (DESIGN.md, Performance). Quick mode: the tiny presets (32 px).

Both models live in one process; their steps alternate round by round on the CPU clock.
"""

from __future__ import annotations

import pytest

from bench_models import cub_like_info, image_batch, inference_step, training_step
from bench_timing import SideBySide, cpu_seconds

pytestmark = pytest.mark.benchmark(group="svip", timer=cpu_seconds)

BATCH = 4


@pytest.fixture(scope="module")
def models(quick):
    """{"svip": (model, optimizer), "vit": (...)}, the batch, and a description of the geometry."""
    import torch

    from zslbench.config import resolve
    from zslbench.catalogue import MODELS

    info = cub_like_info()
    preset = ("synth", "tiny") if quick else ("CUB", None)
    built = {}
    for name in ("svip", "vit"):
        # random init: timing does not depend on the weights (and needs no download)
        cfg = resolve(name, preset[0], preset[1], overrides=["model.pretrained=none"]).model
        torch.manual_seed(0)
        model = MODELS.get(name).build(cfg, info)
        optimizer = torch.optim.Adam([p for g in model.param_groups("full") for p in g["params"]], lr=1e-5)
        built[name] = (model, optimizer)
    geometry = {"backbone": cfg.backbone, "img_size": cfg.img_size, "batch": BATCH, "init": "random",
                "dataset_info": "CUB-like: 312 attributes (28 groups), 150 seen / 50 unseen classes",
                "preset": "tiny (quick mode)" if quick else "CUB presets"}
    return built, image_batch(BATCH, cfg.img_size, len(info.seen_classes)), info, geometry


def _record(recorder, name: str, pair: SideBySide, geometry: dict) -> None:
    recorder.record(name, pair.ratio("svip", "vit"), geometry=geometry, rounds=pair.rounds,
                    pairwise=[round(r, 4) for r in pair.pairwise_ratios("svip", "vit")],
                    pairwise_spread=pair.spread("svip", "vit"), sides=pair.summary())


def test_svip_train_over_vit(benchmark, recorder, models, quick):
    built, batch, _, geometry = models
    steps = {name: training_step(model, optimizer) for name, (model, optimizer) in built.items()}
    pair = SideBySide({name: (lambda step=step: step(batch)) for name, step in steps.items()})
    pair.warm_up()
    benchmark.pedantic(pair.round, rounds=1 if quick else 7, iterations=1)
    _record(recorder, "svip_train_over_vit", pair, geometry)


def test_svip_infer_over_vit(benchmark, recorder, models, quick):
    built, batch, info, geometry = models
    steps = {name: inference_step(model, info.class_attributes) for name, (model, _) in built.items()}
    pair = SideBySide({name: (lambda step=step: step(batch)) for name, step in steps.items()})
    pair.warm_up()
    benchmark.pedantic(pair.round, rounds=2 if quick else 9, iterations=1)
    _record(recorder, "svip_infer_over_vit", pair, geometry)
