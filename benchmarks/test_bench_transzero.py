"""TransZero on its feature cache: the speed the cache buys, and the memory training on it takes.

``transzero_cached_speedup``: one training epoch that extracts the region features on the fly
(decode PNG → transform → frozen backbone → model, the way a frozen-backbone model would run
without a cache) ÷ one epoch over the cached features (``FeatureBatches``), same model and batch
size, side by side. Default synth TransZero config (random-init resnet18 at 64 px, 4×4 regions of
512 channels, batch 32); quick mode: the tiny preset. Building the cache is a one-off, reported.

``transzero_peak_rss_gib``: peak RSS (``VmHWM``) of a child process training the TransZero CUB preset on a
random float16 cache of CUB's geometry (196 regions × 2048 channels). With ``ZSLBENCH_BENCH_FULL=1``
the cache has CUB's 11,788 rows (≈ 8.8 GiB on disk); otherwise 512 rows — training reads a batch at
a time, so the peak should not depend on the cache size (the full-size figure checks exactly that).
Quick mode: the tiny model on a 64-row cache.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bench_models import training_step
from bench_timing import SideBySide, cpu_seconds, run_child, wall_seconds

pytestmark = pytest.mark.benchmark(group="transzero", timer=cpu_seconds)

CUB_IMAGES, CUB_REGIONS, CUB_CHANNELS = 11_788, 196, 2048


@pytest.fixture(scope="module")
def transzero_epochs(synth_root, quick):
    import torch
    from torch.utils.data import DataLoader

    from zslbench.backbones.cnn import region_map
    from zslbench.config import resolve
    from zslbench.data.feature_cache import ExtractorSpec, extraction_transform
    from zslbench.data.images import ImageDataset
    from zslbench.engine.feature_batches import feature_batches
    from zslbench.engine.run_data import load_run_data
    from zslbench.catalogue import build_model

    cfg = resolve("transzero", "synth", "tiny" if quick else None, overrides=[f"data.root={synth_root}"])
    data = load_run_data(cfg)
    trainval = data.split.split("trainval")
    cpu, wall = cpu_seconds(), wall_seconds()
    cached_batches = feature_batches(cfg, data, trainval, True, torch.device("cpu"))  # builds the cache
    build = {"cache_build_cpu_s": round(cpu_seconds() - cpu, 3), "cache_build_wall_s": round(wall_seconds() - wall, 3),
             "cache_images": int(data.split.num_images)}

    spec = ExtractorSpec.from_model_config(cfg.model)
    backbone = spec.build()
    transform, _ = extraction_transform(data.split.dataset, spec.img_size)
    loader = DataLoader(ImageDataset(data.split, trainval, transform, data.image_root), batch_size=cfg.train.batch_size,
                        shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    lookup = torch.as_tensor(data.info.seen_index())

    def on_the_fly_batches():
        for batch in loader:
            with torch.no_grad():
                regions = region_map(backbone, batch["image"]).flatten(2).transpose(1, 2)
            yield {"features": regions, "label": batch["label"], "seen_label": lookup[batch["label"]]}

    steps = {}
    for side in ("cached", "on_the_fly"):
        torch.manual_seed(0)
        model = build_model(cfg, data.info)
        t = cfg.train
        optimizer = torch.optim.Adam(model.param_groups("full"), lr=t.lr, weight_decay=t.weight_decay)
        steps[side] = training_step(model, optimizer)
    sources = {"cached": lambda: cached_batches, "on_the_fly": on_the_fly_batches}
    return {"cfg": cfg, "steps": steps, "sources": sources, "build": build, "trainval": len(trainval),
            "regions": list(cached_batches.cache.shape[1:])}


def test_transzero_cached_speedup(benchmark, recorder, transzero_epochs, quick):
    runs = transzero_epochs
    counted = {}

    def epoch(side: str, limit: int | None = None) -> None:
        done = 0
        for batch in runs["sources"][side]():
            runs["steps"][side](batch)
            done += 1
            if limit is not None and done >= limit:
                break
        counted[side] = done

    for side in ("cached", "on_the_fly"):
        epoch(side, limit=2)  # warm-up: first allocations, lazy imports
    pair = SideBySide({side: (lambda side=side: epoch(side)) for side in ("cached", "on_the_fly")})
    benchmark.pedantic(pair.round, rounds=1 if quick else 2, iterations=1)
    cfg = runs["cfg"]
    recorder.record("transzero_cached_speedup", pair.ratio("on_the_fly", "cached"), rounds=pair.rounds,
                    config=f"transzero on synth preset {cfg.data.synth_preset}: {cfg.model.backbone} at "
                           f"{cfg.model.img_size} px, regions×channels {runs['regions']}, batch {cfg.train.batch_size}",
                    steps_per_epoch=counted, trainval_images=runs["trainval"], one_off=runs["build"],
                    sides=pair.summary())


def write_random_cache(folder: Path, rows: int, regions: int, channels: int, grid: tuple[int, int]) -> float:
    """A ``features.npy`` [rows, regions, channels] of random float16 values and its meta.json (GiB written).

    Written chunk by chunk through a plain file (not a memory map, whose dirty pages would count in
    this process's resident memory: ~9 GiB at full size).
    """
    from zslbench.data.feature_cache import FEATURES_FILE, META_FILE

    folder.mkdir(parents=True, exist_ok=True)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
              "shape": (rows, regions, channels)}
    rng = np.random.default_rng(0)
    chunk = max(1, (64 << 20) // (regions * channels * 4))  # ~64 MiB of float32 per chunk
    with open(folder / FEATURES_FILE, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for first in range(0, rows, chunk):
            count = min(chunk, rows - first)
            out.write(rng.random((count, regions, channels), dtype=np.float32).astype(np.float16).tobytes())
    meta = {"complete": True, "shape": [rows, regions, channels], "grid": list(grid), "fields": {}}
    (folder / META_FILE).write_text(json.dumps(meta))
    return (folder / FEATURES_FILE).stat().st_size / 2**30


@pytest.mark.benchmark(timer=wall_seconds)
def test_transzero_peak_rss_gib(benchmark, recorder, tmp_path, quick, full_size):
    if quick:
        from zslbench.backbones.cnn import region_geometry
        from zslbench.config import resolve

        model = resolve("transzero", "synth", "tiny").model
        channels, grid_h, grid_w = region_geometry(model.backbone, model.img_size, model.output_stride)
        preset, rows, regions, grid, steps = "tiny", 64, grid_h * grid_w, (grid_h, grid_w), 3
    else:
        preset, channels, regions, grid = "cub", CUB_CHANNELS, CUB_REGIONS, (14, 14)
        rows, steps = (CUB_IMAGES, 20) if full_size else (512, 6)  # the peak is reached by the 3rd step
    needed = rows * regions * channels * 2
    if shutil.disk_usage(tmp_path).free < 1.2 * needed:
        pytest.skip(f"needs {needed / 2**30:.1f} GiB free under {tmp_path} for the feature cache")
    folder = tmp_path / "cache"
    wall = wall_seconds()
    cache_gib = write_random_cache(folder, rows, regions, channels, grid)
    write_seconds = wall_seconds() - wall
    child_script = Path(__file__).resolve().parent / "transzero_rss_child.py"
    outcome = {}

    def train_in_child() -> None:
        outcome["run"] = run_child([sys.executable, str(child_script), str(folder), "--steps", str(steps),
                                    "--preset", preset, "--threads", "1"], timeout=1800)

    try:
        benchmark.pedantic(train_in_child, rounds=1, iterations=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    done = outcome["run"]
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    recorder.record("transzero_peak_rss_gib", report["peak_rss_gib"], full_size_cache=bool(full_size and not quick),
                    cache_gib=round(cache_gib, 3), cache_shape=[rows, regions, channels],
                    cache_write_wall_s=round(write_seconds, 1), child_wall_s=round(done.wall_s, 1),
                    child=report, reference_one_off="2.38 GiB with the full CUB-sized cache (300 steps)",
                    rusage_max_rss_gib=round(done.max_rss_bytes / 2**30, 3),
                    rusage_note="ru_maxrss of a child includes the parent's high-water mark at fork; the figure "
                                "is the child's own VmHWM")
