"""``zslbench data info`` and ``zslbench data check``: summarise and verify a dataset directory.

:func:`dataset_summary` is fast (existence checks only); :func:`check_dataset` verifies counts
against PROTOCOL.md §1 (or ``synth_meta.json``) and that every split image is present and,
optionally, decodable. Neither imports torch.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from zslbench.data.xlsa17 import ANCHORS, EXPECTED_COUNTS, SPLITS, SplitInfo, is_synthetic, layout_name, load_split

SYNTH_META = "synth_meta.json"
EXAMPLES_SHOWN = 3
_THREADS = 16  # existence checks and decoding wait on the disk, not the CPU


# --------------------------------------------------------------------------- counts
def split_counts(split: SplitInfo) -> dict[str, int | None]:
    """Class, attribute, image and per-split counts (train/val None when absent)."""
    counts: dict[str, int | None] = {
        "classes": split.num_classes, "seen": len(split.seen_classes), "unseen": len(split.unseen_classes),
        "attributes": split.num_attributes, "images": split.num_images,
    }
    for name in SPLITS:
        counts[name] = int(len(split.locs[name])) if split.has_split(name) else None
    return counts


def split_images(split: SplitInfo) -> np.ndarray:
    """Sorted indices of every image used by some split."""
    return np.unique(np.concatenate([split.locs[name] for name in split.locs]))


def _paths(split: SplitInfo, indices: Iterable[int], image_root: str | Path | None) -> list[str]:
    root = str(Path(image_root).expanduser()) if image_root is not None else str(split.image_root or split.directory)
    return [os.path.join(root, split.image_files[int(i)]) for i in indices]


def _chunked_map(function: Callable[[str], Any], items: Sequence[str], on_chunk: Callable[[int], None] | None = None,
                 chunk: int = 256) -> list[Any]:
    """``function`` over ``items`` in a thread pool, by chunks (cheap per-item work such as os.path.exists)."""
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    results: list[Any] = []
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        for part in pool.map(lambda c: [function(x) for x in c], chunks):
            results.extend(part)
            if on_chunk is not None:
                on_chunk(len(part))
    return results


def missing_images(paths: Sequence[str]) -> list[str]:
    """The paths that do not exist on disk."""
    present = _chunked_map(os.path.exists, paths)
    return [p for p, ok in zip(paths, present) if not ok]


# --------------------------------------------------------------------------- data info
def dataset_summary(dataset: str, data_root: str | Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """A JSON-ready summary of ``<data_root>/<dataset>``: counts, missing images, features, word vectors, groups."""
    from zslbench.data.wordvec import precomputed_shape

    split = load_split(dataset, data_root, image_root)
    root = Path(image_root).expanduser() if image_root is not None else split.directory
    paths = _paths(split, split_images(split), root)
    shape = precomputed_shape(split)
    return {
        "dataset": dataset,
        "directory": str(split.directory),
        "image_root": str(root),
        **split_counts(split),
        "images_missing": len(missing_images(paths)),
        "features": bool(split.has_features),
        "word_vectors": list(shape) if shape is not None else None,
        "attribute_groups": len(split.attribute_groups),
        "attribute_names": split.source_files.get("attribute_names"),
        "image_list": split.source_files.get("images"),
        "fingerprint": split.fingerprint(),
    }


def print_summary(summary: dict[str, Any], console: Any) -> None:
    """Render a :func:`dataset_summary` as a rich table."""
    from rich.table import Table

    table = Table(title=f"{summary['dataset']}  ({summary['directory']})", show_header=True, header_style="bold")
    table.add_column("item")
    table.add_column("value", justify="right")
    for key in ("classes", "seen", "unseen", "attributes", "images", *SPLITS):
        value = summary.get(key)
        table.add_row(key, "—" if value is None else f"{value:,}")
    missing = summary.get("images_missing", 0)
    style = "green" if not missing else "red"
    table.add_row("images missing", f"[{style}]{missing:,}[/{style}]")
    table.add_row("image root", str(summary.get("image_root", "")))
    table.add_row("ResNet-101 features", "yes" if summary.get("features") else "no")
    vectors = summary.get("word_vectors")
    table.add_row("word vectors", "×".join(map(str, vectors)) if vectors else "—")
    table.add_row("attribute groups", str(summary.get("attribute_groups", 0)))
    console.print(table)


# --------------------------------------------------------------------------- data check
@dataclass
class CheckReport:
    """Outcome of :func:`check_dataset`: ``ok`` iff ``problems`` is empty."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    checked: int = 0  # images looked at
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)


def expected_counts(dataset: str, directory: Path) -> dict[str, int]:
    """PROTOCOL.md §1 counts of a real dataset, or ``synth_meta.json``'s ``counts`` ({} when unknown)."""
    if dataset in EXPECTED_COUNTS:
        return dict(EXPECTED_COUNTS[dataset])
    meta = directory / SYNTH_META
    if meta.is_file():
        try:
            counts = json.loads(meta.read_text(encoding="utf-8")).get("counts", {})
        except (json.JSONDecodeError, AttributeError):
            return {}
        return {k: int(v) for k, v in counts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def unsupported_mode(mode: str) -> str | None:
    """Why images of PIL ``mode`` cannot be used, or None when they can.

    Converting 16/32-bit integer or floating-point pixels to 8-bit RGB clips them (a 16-bit PNG
    turns white, a float TIFF black), so such images are refused rather than silently ruined.

    >>> unsupported_mode("P") is None, unsupported_mode("I;16")
    (True, 'has pixel mode I;16 (more than 8 bits per channel), which cannot be read as 8-bit RGB')
    """
    if mode in ("I", "F") or mode.startswith(("I;", "F;")):
        return f"has pixel mode {mode} (more than 8 bits per channel), which cannot be read as 8-bit RGB"
    return None


def _decodes(path: str) -> str | None:
    """None when the image decodes, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            problem = unsupported_mode(image.mode)
            if problem:
                return problem
            image.convert("RGB")
        return None
    except FileNotFoundError:
        return "missing"
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... on damaged files
        return f"{exc.__class__.__name__}: {exc}"


def check_dataset(dataset: str, data_root: str | Path, image_root: str | Path | None = None, decode: bool = True,
                  console: Any = None) -> CheckReport:
    """Verify a dataset end to end and print a report on ``console`` (when given).

    Split-file problems raise :class:`~zslbench.core.errors.DataError` from :func:`load_split`;
    count mismatches and missing or undecodable images are listed in the report (``ok`` False).
    """
    split = load_split(dataset, data_root, image_root)
    root = Path(image_root).expanduser() if image_root is not None else split.directory
    counts = split_counts(split)
    problems = [f"{key}: found {counts.get(key)}, expected {want}"
                for key, want in expected_counts(dataset, split.directory).items()
                if key in counts and counts[key] is not None and counts[key] != want]

    paths = _paths(split, split_images(split), root)
    missing, damaged = _scan_images(paths, decode, console, dataset)
    corrupt = [f"{path} ({why})" for path, why in damaged]
    if missing:
        anchor = ANCHORS.get(layout_name(dataset), ("",))[0]
        shown = ", ".join(os.path.relpath(p, root) for p in missing[:EXAMPLES_SHOWN])
        problems.append(
            f"{len(missing):,} of {len(paths):,} images missing under the image root {root} (paths start at "
            f"{anchor or 'the image root'}; e.g. {shown}); {_image_hint(dataset, split.directory.parent)}")
    if corrupt:
        shown = "; ".join(f"{os.path.relpath(p, root)} ({why})" for p, why in damaged[:EXAMPLES_SHOWN])
        problems.append(f"{len(corrupt):,} of {len(paths):,} images cannot be decoded (e.g. {shown}); "
                        "re-download or regenerate them")
    report = CheckReport(ok=not problems, problems=problems, counts=counts, checked=len(paths),
                         missing=missing, corrupt=corrupt)
    if console is not None:
        _print_report(report, dataset, split, console, decode)
    return report


def _image_hint(dataset: str, data_root: Path) -> str:
    if is_synthetic(dataset):
        return f"regenerate with `zslbench data synth --data-root {data_root}`"
    return (f"fetch the images with `zslbench data fetch {dataset} --data-root {data_root}` "
            "or point --image-root at the folder that holds them")


def _scan_images(paths: list[str], decode: bool, console: Any,
                 dataset: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(missing paths, (path, reason) of undecodable ones), with a progress bar on a console."""
    check = _decodes if decode else (lambda p: None if os.path.exists(p) else "missing")
    label = f"{'decoding' if decode else 'checking'} {dataset} images"
    if console is not None and paths:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(label, total=len(paths))
            outcomes = _chunked_map(check, paths, on_chunk=lambda n: bar.advance(task, n), chunk=64)
    else:
        outcomes = _chunked_map(check, paths, chunk=64)
    missing = [p for p, why in zip(paths, outcomes) if why == "missing"]
    damaged = [(p, why) for p, why in zip(paths, outcomes) if why not in (None, "missing")]
    return missing, damaged


def _print_report(report: CheckReport, dataset: str, split: SplitInfo, console: Any, decode: bool) -> None:
    what = "present and decodable" if decode else "present"
    if report.ok:
        console.print(f"[bold green]OK[/]: {dataset} — {split.num_classes} classes "
                      f"({len(split.seen_classes)} seen / {len(split.unseen_classes)} unseen), "
                      f"{split.num_attributes} attributes, {report.checked:,} images {what}")
        return
    console.print(f"[bold red]{len(report.problems)} problem(s)[/] in {dataset} ({split.directory}):")
    from rich.markup import escape

    for problem in report.problems:
        console.print(f"  [red]•[/] {escape(problem)}", highlight=False)
