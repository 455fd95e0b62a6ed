"""Writing a planned synthetic benchmark into a folder: images and masks (in worker processes), the
xlsa17 split files (through :func:`zslbench.data.xlsa17.write_split_files`) and the meta file.

Every image is drawn from its own seed, and PNGs and MAT files are written with fixed options and
no timestamps, so the bytes on disk depend only on (preset, seed) — not on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.core.faults import fault_point
from zslbench.data.synth.drawing import instance_rng, render_instance
from zslbench.data.synth.plan import SynthPlan
from zslbench.data.synth.presets import GENERATOR_VERSION, META_FILE, PARTS, SynthPreset, group_offsets
from zslbench.data.xlsa17 import SPLITS, write_split_files

#: The program named in the MAT headers of the split files.
MAT_WRITER = "the zslbench synthetic benchmark generator"


def write_dataset(plan: SynthPlan, directory: Path, workers: int) -> None:
    """Images and masks, then the tables; the meta file last: its presence marks a complete directory."""
    _render_all(plan, directory, workers)
    write_tables(plan, directory)


def default_workers(num_images: int) -> int:
    """Worker processes: one per core, but no pool for small sets (start-up would dominate)."""
    return max(1, min(os.cpu_count() or 1, 8, num_images // 400))


# --------------------------------------------------------------------------- pixels
def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    # fixed options and no metadata: the same array always gives the same bytes
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def _render_chunk(job: tuple[str, dict[str, Any], int, list[tuple[int, str, list[int]]]]) -> int:
    """Render and write a batch of images and masks (runs in a worker process)."""
    directory, preset_params, seed, items = job
    preset = SynthPreset(**{k: tuple(v) if isinstance(v, list) else v for k, v in preset_params.items()})
    root = Path(directory)
    for index, relative, values in items:
        image, mask = render_instance(values, preset, instance_rng(seed, index))
        _save_png(image, root / relative)
        _save_png(mask, root / "masks" / Path(*Path(relative).parts[1:]))
    return len(items)


def _render_all(plan: SynthPlan, directory: Path, workers: int) -> None:
    for name in plan.class_names:
        (directory / "images" / name).mkdir(parents=True, exist_ok=True)
        (directory / "masks" / name).mkdir(parents=True, exist_ok=True)
    items = [(i, plan.image_files[i], [int(v) for v in plan.instance_values[i]]) for i in range(len(plan.labels))]
    chunk = 64
    jobs = [(str(directory), plan.preset.params(), plan.seed, items[s:s + chunk]) for s in range(0, len(items), chunk)]
    if workers <= 1:
        for job in jobs:
            _render_chunk(job)
            fault_point("synth_image")
        return
    # forkserver, not fork: the caller may hold threads (a torch.distributed group, CUDA) that a forked
    # child would inherit in an unknown state; the workers need only numpy and PIL (0.2 s to start)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))
    try:
        for _done in pool.map(_render_chunk, jobs):
            fault_point("synth_image")
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop queued chunks before the caller cleans up
        raise
    pool.shutdown(wait=True)


# --------------------------------------------------------------------------- tables
def write_tables(plan: SynthPlan, directory: Path) -> None:
    """Split files, attribute names/groups and the meta file (everything but the pixels)."""
    offsets = group_offsets(plan.groups)
    groups = {g.name: list(range(int(o), int(o) + len(g.values))) for g, o in zip(plan.groups, offsets)}
    source = f"zslbench synthetic benchmark generator v{GENERATOR_VERSION}: one group per (part, property)"
    write_split_files(directory, plan.original_att, plan.class_names, plan.labels, plan.image_files,
                      {name: plan.locs[name] for name in SPLITS},
                      attribute_names=[p for g in plan.groups for p in g.phrases()], attribute_groups=groups,
                      groups_source=source, writer=MAT_WRITER, compress=True)
    (directory / META_FILE).write_text(json.dumps(_meta(plan), indent=1) + "\n", encoding="utf-8")


def _meta(plan: SynthPlan) -> dict[str, Any]:
    return {
        "generator": "zslbench.data.synth",
        "version": GENERATOR_VERSION,
        "preset": plan.preset.name,
        "seed": plan.seed,
        "params": plan.preset.params(),
        "image_size": plan.preset.image_size,
        "clutter": plan.preset.has_clutter,
        "parts": list(PARTS),
        "mask_values": {"0": "background or clutter", **{str(i + 1): p for i, p in enumerate(PARTS)}},
        "groups": {g.name: list(g.values) for g in plan.groups},
        "counts": plan.counts,
        "classes": [{"name": name, "role": role, "images": int((plan.labels == c).sum()),
                     "attributes": {g.name: g.values[v] for g, v in zip(plan.groups, plan.class_values[c])}}
                    for c, (name, role) in enumerate(zip(plan.class_names, plan.class_role))],
    }
