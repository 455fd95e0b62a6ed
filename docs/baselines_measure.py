"""One-off measurements of the TransZero-style baseline's feature cache (not a test, not a benchmark).

Two measurements, each printed as JSON:

``rss``   Peak resident memory (``resource.getrusage(...).ru_maxrss``) of TransZero training with the
          CUB preset's model (d 300, d_ff 512, 312 attributes, 200 classes) reading a CUB-sized cache
          — 11,788 images × 196 regions × 2048 channels, float16, ≈ 9 GiB of random values written to
          a temporary folder and deleted afterwards — for ``--steps`` steps of batch 50. Training runs
          in a fresh child process so its peak is not the generator's. ``--readers pread memmap`` also
          reads batches by fancy-indexing ``np.memmap`` instead of positional reads, for comparison.

``epoch`` One training epoch over cached features vs one epoch that extracts the features on the fly
          (decode → transform → frozen backbone → model), on the 64 px synthetic benchmark with the
          synth preset's extractor (random-init resnet18, output stride 16: 4×4 regions of 512).

Measured once (2 shared CPU cores, 1 torch thread): ``rss`` — positional reads 2.34 GiB peak after 20
steps and 2.38 GiB after 300 (0.76 GiB before training; the rest is the CUB-sized model's own
activations, 2.28 GiB with no cache at all); ``np.memmap`` fancy-indexing 6.17 GiB after 100 steps
and growing with the rows touched. ``epoch`` — 5.2 s cached vs 22.8 s on the fly (×4.4) for 55
steps of batch 32; building the cache of all 2,534 images took 29 s.

Usage::

    python docs/baselines_measure.py rss --dir /tmp/zsl-measure --steps 300 [--readers pread memmap] [--keep]
    python docs/baselines_measure.py epoch --dir /tmp/zsl-measure --rebuild
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CUB = {"images": 11788, "regions": 196, "channels": 2048, "attributes": 312, "classes": 200, "seen": 150,
       "trainval": 7057, "word_dim": 300}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


# --------------------------------------------------------------------------- rss
def generate_cache(folder: Path, rows_per_chunk: int = 128) -> dict:
    """A CUB-sized features.npy of random float16 values plus its meta.json (the FeatureCache layout)."""
    from zslbench.data.feature_cache import FEATURES_FILE, META_FILE

    shape = (CUB["images"], CUB["regions"], CUB["channels"])
    needed = int(np.prod(shape)) * 2
    existing = folder / FEATURES_FILE
    if (folder / META_FILE).is_file() and existing.is_file() and existing.stat().st_size >= needed:
        return {"cache_gib": existing.stat().st_size / 2**30, "generate_seconds": 0.0}  # kept by --keep
    free = shutil.disk_usage(folder.parent if folder.parent.exists() else Path("/")).free
    if free < 1.2 * needed:
        raise SystemExit(f"need {needed / 2**30:.1f} GiB free for the cache, only {free / 2**30:.1f} GiB")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=shape)
    start = time.perf_counter()
    for first in range(0, shape[0], rows_per_chunk):
        rows = min(rows_per_chunk, shape[0] - first)
        array[first:first + rows] = rng.random((rows, *shape[1:]), dtype=np.float32)
        array.flush()
    del array
    meta = {"complete": True, "shape": list(shape), "grid": [14, 14], "fields": {}}
    (folder / META_FILE).write_text(json.dumps(meta))
    return {"cache_gib": (folder / FEATURES_FILE).stat().st_size / 2**30,
            "generate_seconds": time.perf_counter() - start}


def train_on_cache(folder: Path, steps: int, reader: str) -> dict:
    """(child process) TransZero CUB-preset training steps on the cache; reports the peak RSS."""
    import torch

    from zslbench.baselines.transzero.entry import TransZeroConfig
    from zslbench.baselines.transzero.model import TransZero
    from zslbench.data.feature_cache import FeatureCache
    from zslbench.engine.feature_batches import FeatureBatches
    from zslbench.catalogue import DatasetInfo

    meta = json.loads((folder / "meta.json").read_text())
    cache = FeatureCache(folder, meta)
    if reader == "memmap":  # the alternative: fancy-index a memory map (its pages count as resident)
        mapped = cache.memmap()

        def memmap_read(indices, dtype=np.float32):
            unique, inverse = np.unique(indices, return_inverse=True)
            return np.asarray(mapped[unique])[inverse.ravel()].astype(dtype)

        cache.read = memmap_read
    rng = np.random.default_rng(0)
    attributes = rng.random((CUB["classes"], CUB["attributes"])).astype(np.float32)
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True)
    info = DatasetInfo("CUB", attributes, np.arange(CUB["seen"]), np.arange(CUB["seen"], CUB["classes"]),
                       rng.normal(size=(CUB["attributes"], CUB["word_dim"])).astype(np.float32))
    indices = np.sort(rng.choice(CUB["images"], CUB["trainval"], replace=False))
    labels = rng.integers(0, CUB["seen"], len(indices))
    batches = FeatureBatches(cache, indices, labels, labels, batch_size=50, shuffle=True, drop_last=True,
                             balanced=False)
    cfg = TransZeroConfig(backbone="resnet101", img_size=448, d_model=300, d_ff=512, dropout=0.4)
    model = TransZero(cfg, info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    before = peak_rss_gib()
    done, epoch, start, read_seconds = 0, 0, time.perf_counter(), 0.0
    while done < steps:
        batches.generator.manual_seed(epoch)
        tick = time.perf_counter()
        for batch in batches:
            read_seconds += time.perf_counter() - tick
            loss = sum(model.losses(model(batch), batch).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
            tick = time.perf_counter()
        epoch += 1
    return {"reader": reader, "steps": done, "batch": 50, "threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - start, "waiting_for_batches_seconds": read_seconds,
            "peak_rss_gib_before_training": before, "peak_rss_gib": peak_rss_gib()}


def measure_rss(args) -> dict:
    folder = Path(args.dir) / "cub_sized_cache"
    try:
        generated = generate_cache(folder)
        print(json.dumps(generated), flush=True)
        results = []
        for reader in args.readers:
            child = subprocess.run([sys.executable, __file__, "_train", "--dir", str(folder), "--steps",
                                    str(args.steps), "--reader", reader, "--threads", str(args.threads)],
                                   capture_output=True, text=True, check=True)
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)  # each run as soon as it is done
        return {**generated, "runs": results}
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- epoch
def measure_epoch(args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from zslbench.backbones.cnn import region_map
    from zslbench.config import resolve
    from zslbench.data.feature_cache import ExtractorSpec, ensure_feature_cache, extraction_transform
    from zslbench.data.images import ImageDataset
    from zslbench.engine.feature_batches import feature_batches
    from zslbench.engine.run_data import load_run_data
    from zslbench.catalogue import build_model

    cfg = resolve(model="transzero", dataset="synth", overrides=[f"data.root={Path(args.dir) / 'data'}"])
    data = load_run_data(cfg)
    trainval = data.split.split("trainval")
    spec = ExtractorSpec.from_model_config(cfg.model)

    if args.rebuild:
        from zslbench.data.feature_cache import cache_root

        shutil.rmtree(cache_root(data.split.directory), ignore_errors=True)
    start = time.perf_counter()
    ensure_feature_cache(data.split, spec, data.image_root, "cpu", batch_size=64, progress=False)
    build_seconds = time.perf_counter() - start  # zero when an earlier run left the cache

    def train(batches) -> tuple[float, int]:
        torch.manual_seed(0)
        model = build_model(cfg, data.info)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        tick, steps = time.perf_counter(), 0
        for batch in batches:
            loss = sum(model.losses(model(batch), batch).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        return time.perf_counter() - tick, steps

    cached_seconds, cached_steps = train(feature_batches(cfg, data, trainval, True, torch.device("cpu")))

    backbone = spec.build()
    transform, _ = extraction_transform(data.split.dataset, spec.img_size)
    loader = DataLoader(ImageDataset(data.split, trainval, transform, data.image_root),
                        batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    lookup = torch.as_tensor(data.info.seen_index())

    def on_the_fly():
        for batch in loader:
            with torch.no_grad():
                regions = region_map(backbone, batch["image"]).flatten(2).transpose(1, 2)
            yield {"features": regions, "label": batch["label"], "seen_label": lookup[batch["label"]]}

    fly_seconds, fly_steps = train(on_the_fly())
    return {"dataset": "synth (64 px)", "images_trainval": int(len(trainval)), "extractor": spec.backbone,
            "regions": data.extra["feature_caches"][spec].shape[1:], "threads": torch.get_num_threads(),
            "cache_build_seconds_all_images": build_seconds,
            "epoch_seconds_cached": cached_seconds, "steps_cached": cached_steps,
            "epoch_seconds_on_the_fly": fly_seconds, "steps_on_the_fly": fly_steps,
            "on_the_fly_over_cached": fly_seconds / cached_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["rss", "epoch", "_train"])
    parser.add_argument("--dir", default="/tmp/zslbench-measure")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--reader", default="pread")
    parser.add_argument("--readers", nargs="+", default=["pread"])
    parser.add_argument("--keep", action="store_true", help="keep the generated cache")
    parser.add_argument("--rebuild", action="store_true", help="epoch: delete the synth feature cache first")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: stable numbers on a shared CPU where idle threads spin)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "_train":
        result = train_on_cache(Path(args.dir), args.steps, args.reader)
    elif args.what == "rss":
        result = measure_rss(args)
    else:
        result = measure_epoch(args)
    print(json.dumps(result, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


if __name__ == "__main__":
    main()
