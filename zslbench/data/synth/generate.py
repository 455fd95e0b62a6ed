"""Generating the synthetic benchmark into ``<data_root>/<synth_dir_name(preset)>/``, or reusing it.

A complete directory with the same generator version, preset and seed is reused. Otherwise the
dataset is written into a hidden sibling folder and renamed into place
(:func:`zslbench.core.files.build_in_sibling`), so an interrupted run never leaves a partial dataset
under the final name; the folders of generations whose process died are removed first.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zslbench.core.errors import DataError
from zslbench.core.files import build_in_sibling
from zslbench.data.synth.plan import plan_dataset
from zslbench.data.synth.presets import (DEFAULT_PRESET, GENERATOR_VERSION, META_FILE, SynthPreset, get_preset,
                                         synth_dir_name)
from zslbench.data.synth.writing import default_workers, write_dataset


@dataclass(frozen=True)
class SynthResult:
    """Where a dataset was written, its counts, and whether it was generated now or reused."""

    directory: Path
    counts: dict[str, int]
    generated: bool
    seconds: float


def generate_synth(data_root: str | Path, preset: str | SynthPreset = DEFAULT_PRESET, seed: int = 0,
                   workers: int | None = None, force: bool = False, console: Any = None) -> SynthResult:
    """Write ``<data_root>/<synth_dir_name(preset)>/``; reuse a complete matching one unless ``force``."""
    preset = get_preset(preset)
    root = Path(data_root).expanduser()
    final = root / synth_dir_name(preset)
    start = time.perf_counter()
    meta = read_meta(final)
    if not force and meta is not None and meta_matches(meta, preset, seed) and is_complete(final, meta):
        return SynthResult(final, dict(meta["counts"]), False, time.perf_counter() - start)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data root {str(root)!r} ({exc.strerror or exc}); "
                        "pass a writable directory with --out (or set $ZSLBENCH_DATA)") from None
    plan = plan_dataset(preset, seed)
    if console is not None:
        console.print(f"generating the synthetic benchmark (preset {preset.name}, seed {seed}, "
                      f"{len(plan.labels):,} images) into {final}", soft_wrap=True, highlight=False)

    def build(folder: Path) -> None:
        write_dataset(plan, folder, workers or default_workers(len(plan.labels)))

    # another process that finished the same dataset meanwhile: keep its files (unless forced)
    keep = None if force else (lambda existing: _reusable(existing, preset, seed))
    try:
        build_in_sibling(final, build, keep_existing=keep)
    except OSError as exc:  # disk full, permissions, ...: the user can fix these
        raise DataError(f"writing the synthetic benchmark under {str(root)!r} failed ({exc.strerror or exc}); "
                        "free disk space or pass a writable directory with --out") from None
    return SynthResult(final, plan.counts, True, time.perf_counter() - start)


def _reusable(directory: Path, preset: SynthPreset, seed: int) -> bool:
    """Whether ``directory`` holds a complete dataset of this generator version, preset and seed."""
    meta = read_meta(directory)
    return meta is not None and meta_matches(meta, preset, seed) and is_complete(directory, meta)


def ensure_synth(data_root: str | Path, preset: str | SynthPreset = DEFAULT_PRESET, seed: int = 0,
                 console: Any = None) -> Path:
    """The directory of the synthetic benchmark, generated on first use (or when its meta differs)."""
    result = generate_synth(data_root, preset, seed, console=console)
    if console is not None and result.generated:
        console.print(f"generated {result.counts['images']:,} images in {result.seconds:.1f} s")
    return result.directory


def read_meta(directory: str | Path) -> dict[str, Any] | None:
    """The parsed ``synth_meta.json`` of ``directory`` (None when absent or unreadable)."""
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def meta_matches(meta: dict[str, Any], preset: SynthPreset, seed: int) -> bool:
    """Whether ``meta`` describes exactly this generator version, preset (all parameters) and seed."""
    return (meta.get("version") == GENERATOR_VERSION and meta.get("preset") == preset.name
            and meta.get("seed") == seed and meta.get("params") == preset.params())


def is_complete(directory: Path, meta: dict[str, Any]) -> bool:
    """The split files exist and every class folder holds its images and masks (cheap: no decoding)."""
    if not all((directory / name).is_file() for name in ("att_splits.mat", "res101.mat", "attributes.txt")):
        return False
    for entry in meta.get("classes", []):
        for kind in ("images", "masks"):
            folder = directory / kind / str(entry.get("name", ""))
            try:
                if len(os.listdir(folder)) != entry.get("images"):
                    return False
            except OSError:
                return False
    return True


def print_synth_summary(result: SynthResult, console: Any) -> None:
    """A short rich summary: where, what (counts), and how long it took."""
    from rich.table import Table

    meta = read_meta(result.directory) or {}
    action = "generated" if result.generated else "already present (same preset, seed and version; --force regenerates)"
    console.print(f"[bold]synth[/bold] preset {meta.get('preset', '?')}, seed {meta.get('seed', '?')}: {action}",
                  soft_wrap=True)
    console.print(f"path: {result.directory}", soft_wrap=True, highlight=False)
    c = result.counts
    table = Table("", "count", box=None)
    table.add_row("classes (seen / unseen)", f"{c.get('classes', 0):,} ({c.get('seen', 0)} / {c.get('unseen', 0)})")
    for key in ("attributes", "images", "trainval", "train", "val", "test_seen", "test_unseen"):
        table.add_row(key, f"{c.get(key, 0):,}")
    console.print(table)
    console.print(f"image size {meta.get('image_size', '?')} px, parts {', '.join(meta.get('parts', []))}, "
                  f"clutter {'on' if meta.get('clutter') else 'off'}; {result.seconds:.1f} s", soft_wrap=True)
