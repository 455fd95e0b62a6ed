"""Child process of the TransZero memory benchmark: train on a feature cache, print the peak RSS as JSON.

Run by ``test_bench_transzero.py`` in a fresh interpreter, so the peak resident set size
(``VmHWM``, see :func:`peak_rss_gib`) is this training's, not the parent's (which generated the cache
and ran other benchmarks). The model is the TransZero CUB preset (``--preset cub``: d 300, d_ff 512, 196 regions
× 2048 channels from resnet101 at 448 px) or the tiny preset (``--preset tiny``), on a CUB-shaped
dataset info; batches come from :class:`zslbench.engine.feature_batches.FeatureBatches`, as in training.

usage: transzero_rss_child.py CACHE_DIR --steps N [--preset cub|tiny] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

#: CUB's trainval size: the rows a CUB training epoch reads.
CUB_TRAINVAL = 7057


def peak_rss_gib() -> float:
    """This program's peak resident set size: ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss``: on Linux a process's ``ru_maxrss`` starts at the high-water mark of the
    process it was forked from (kept across ``execve``), so a child of a large pytest process would
    report the parent's peak. ``VmHWM`` belongs to the address space created by ``execve``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def train(folder: Path, steps: int, preset: str) -> dict:
    import torch

    from bench_models import cub_like_info
    from zslbench.config import resolve
    from zslbench.data.feature_cache import FeatureCache
    from zslbench.engine.feature_batches import FeatureBatches
    from zslbench.catalogue import build_model

    cfg = resolve("transzero", "CUB") if preset == "cub" else resolve("transzero", "synth", "tiny")
    cache = FeatureCache(folder, json.loads((folder / "meta.json").read_text()))
    info = cub_like_info()
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(cache.shape[0], min(cache.shape[0], CUB_TRAINVAL), replace=False))
    labels = rng.integers(0, len(info.seen_classes), len(rows))
    batch_size = min(cfg.train.batch_size, len(rows))
    batches = FeatureBatches(cache, rows, labels, labels, batch_size=batch_size, shuffle=True, drop_last=True,
                             balanced=False)
    torch.manual_seed(0)
    model = build_model(cfg, info)
    t = cfg.train
    optimizer = torch.optim.Adam(model.param_groups("full"), lr=t.lr, weight_decay=t.weight_decay)
    before = peak_rss_gib()
    done, epoch, start = 0, 0, time.perf_counter()
    while done < steps:
        batches.generator.manual_seed(epoch)
        for batch in batches:
            loss = sum(model.losses(model(batch), batch).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
        epoch += 1
    return {"preset": preset, "steps": done, "batch": batch_size, "rows_read_per_epoch": len(rows),
            "cache_shape": list(cache.shape), "threads": torch.get_num_threads(),
            "train_seconds": round(time.perf_counter() - start, 3),
            "peak_rss_gib_before_training": round(before, 4), "peak_rss_gib": round(peak_rss_gib(), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--preset", choices=["cub", "tiny"], default="cub")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(train(args.cache_dir, args.steps, args.preset)))


if __name__ == "__main__":
    main()
