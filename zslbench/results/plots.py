"""Plots of runs (seaborn + matplotlib's Agg backend): sensitivity, seen–unseen curves, kept patches.

Each function writes PNG or PDF (by the output's extension) and returns the written path; only when
asked (``log_to_run=True``, the command line's ``--log-to-run``) is the figure also logged under
``plots/`` of the run it shows (or of the sweep, for sensitivity) — finished runs are not changed
otherwise. Numbers are percentages. The runs are chosen as for the tables
(:mod:`zslbench.results.selection`): containers are never plotted, and runs of different benchmarks never
share axes.

* :func:`plot_sensitivity` — metric vs a **swept** hyperparameter's value, one panel per metric, one
  series per benchmark (the seeds' spread as an error band, ± sample std);
* :func:`plot_ausuc` — seen–unseen accuracy curves from stored scores (exact, via
  :func:`zslbench.metrics.ausuc`), one panel per benchmark, one curve per method named as in the tables,
  each with its own line style and marker (identical curves stay visible), AUSUC in the legend, the run's
  chosen γ marked, axes fitted to the curves;
* :func:`plot_patches` — test images with SVIP's kept super-patches highlighted, and on the
  synthetic benchmark the ground-truth creature outlined.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import polars as pl

from zslbench.core.errors import UserError
from zslbench.core.files import atomic_write
from zslbench.results.frames import TABLE_METRICS, aggregate, benchmark_labels, load_runs, method_label
from zslbench.results.selection import Selection, select_runs, tagged_runs

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from zslbench.metrics import Scores

FIGURE_FORMATS = (".png", ".pdf")
METRIC_TITLES = {"zsl_t1": "ZSL T1", "gzsl_u": "GZSL U", "gzsl_s": "GZSL S", "gzsl_h": "GZSL H", "ausuc": "AUSUC"}
MAX_CURVES = 8
#: Line styles and markers cycled over curves, so curves that coincide stay distinguishable.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def check_output(out: Path) -> Path:
    """The output path, if its extension is .png or .pdf (else a one-line UserError)."""
    out = Path(out)
    if out.suffix.lower() not in FIGURE_FORMATS:
        raise UserError(f"cannot write a plot to {str(out)!r}: use a .png or .pdf file name for --out")
    return out


def save_figure(fig: "Figure", out: Path) -> Path:
    """Write ``fig`` atomically (PNG at 150 dpi, or PDF) and close it."""
    plt = _pyplot()
    try:
        atomic_write(out, lambda handle: fig.savefig(handle, dpi=150, bbox_inches="tight",
                                                     format=out.suffix.lower().lstrip(".")),
                     hint="free disk space or fix the folder's permissions, or choose another --out")
    finally:
        plt.close(fig)
    return out


def log_plot(run_id: str | None, path: Path, tracking_uri: str = "") -> bool:
    """Attach a written plot to an existing (possibly finished) run under ``plots/`` (the run's status
    is not touched). Returns whether it was logged."""
    if not run_id:
        return False
    from zslbench.tracking import attach_artifact

    # a parent id whose run was deleted is no error: the plot file is still written
    return attach_artifact(run_id, path, "plots", tracking_uri)


# --------------------------------------------------------------------------- sensitivity
def sensitivity_frame(frame: pl.DataFrame, param: str) -> tuple[str, pl.DataFrame]:
    """(config column, runs of ``frame`` that vary it, with a float ``value`` column and a ``benchmark``)."""
    from zslbench.results.tables import sensitivity_column

    column = sensitivity_column(param)
    if frame.is_empty() or column not in frame.columns:
        raise UserError(f"no sweep of {param} in these runs: a sensitivity plot shows swept parameters only — run "
                        f"`zslbench sweep {param}` first (or pick runs with --parent/--run)")
    runs = frame.filter(pl.col(column).is_not_null() & (pl.col("ablations") == "none"))
    runs = runs.with_columns(pl.Series("benchmark", benchmark_labels(runs) if runs.height else [], dtype=pl.Utf8))
    runs = runs.with_columns(pl.col(column).cast(pl.Float64, strict=False).alias("value"))
    if runs["value"].drop_nulls().n_unique() < 2:
        raise UserError(f"the runs do not vary {column} ({param}); run `zslbench sweep {param}` first")
    return column, runs


def _selected(experiment: str, tracking_uri: str, frame: pl.DataFrame | None, selection: Selection | None,
              purpose: str, param: str | None = None) -> pl.DataFrame:
    selection = selection or Selection()
    frame = load_runs(experiment, tracking_uri) if frame is None else frame
    tagged = tagged_runs(experiment, tracking_uri, selection) if selection.tags else None
    return select_runs(frame, selection, purpose, param=param, tagged=tagged)


def plot_sensitivity(experiment: str, param: str, out: Path, tracking_uri: str = "",
                     metrics: Sequence[str] = TABLE_METRICS, frame: pl.DataFrame | None = None,
                     selection: Selection | None = None, log_to_run: bool = False) -> Path:
    """Metric (%) vs swept ``param``'s value, one panel per metric, one series per benchmark, seeds as an
    error band (± std). ``frame``: all runs of the experiment (containers included), else loaded."""
    import seaborn as sns

    from zslbench.catalogue import key_label
    from zslbench.results.experiment import sweep_name

    out = check_output(out)
    runs = _selected(experiment, tracking_uri, frame, selection, "sensitivity", sweep_name(param))
    column, runs = sensitivity_frame(runs, param)
    present = [m for m in metrics if m in runs.columns and runs[m].drop_nulls().len()]
    long = runs.unpivot(index=["value", "benchmark", "seed", "run_id"], on=present, variable_name="metric",
                        value_name="score").drop_nulls("score")
    long = long.with_columns((pl.col("score") * 100).alias("score"),
                             pl.col("metric").replace(METRIC_TITLES).alias("metric"))
    plt = _pyplot()
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(present), figsize=(2.6 * len(present), 2.6), squeeze=False, sharex=True)
    benchmarks = sorted(long["benchmark"].unique().to_list())
    palette = dict(zip(benchmarks, sns.color_palette("colorblind", len(benchmarks))))
    markers = dict(zip(benchmarks, MARKERS))
    for axis, metric in zip(axes[0], [METRIC_TITLES[m] for m in present]):
        data = long.filter(pl.col("metric") == metric).sort("value").to_pandas()
        sns.lineplot(data=data, x="value", y="score", hue="benchmark", style="benchmark", palette=palette,
                     markers=markers, errorbar="sd", ax=axis, legend=axis is axes[0][-1])
        axis.set_title(metric)
        axis.set_xlabel(key_label(column))
        axis.set_ylabel("%" if axis is axes[0][0] else "")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), title="benchmark", frameon=False)
    fig.suptitle(f"Sensitivity to {key_label(column)} (mean ± std over seeds)", y=1.04)
    save_figure(fig, out)
    parents = [p for p in runs["parent_run_id"].unique().to_list() if p] if "parent_run_id" in runs.columns else []
    if log_to_run and len(parents) == 1:
        log_plot(parents[0], out, tracking_uri)
    return out


# --------------------------------------------------------------------------- seen–unseen curves
def run_label(record: dict[str, Any]) -> str:
    """A legend label for one run: method, dataset, seed, short run id."""
    return (f"{method_label(record.get('model', '?'), record.get('ablations', 'none'))} · {record.get('dataset', '?')}"
            f" · s{record.get('seed', '?')} · {str(record['run_id'])[:8]}")


def curve_runs(runs: pl.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """(legend label, run) per configuration: the lowest seed's run, labelled with the method's name (and the
    hyperparameters that tell configurations of one method apart)."""
    grouped = aggregate(runs, metrics=())
    chosen = []
    for record in grouped.iter_rows(named=True):
        run_id = record["run_ids"][0]
        label = method_label(record["model"], record["ablations"])
        if record.get("hyperparameters"):
            label += f" ({record['hyperparameters'].replace('model.', '')})"
        chosen.append((label, runs.filter(pl.col("run_id") == run_id).row(0, named=True)))
    return chosen


def plot_ausuc(experiment: str, run_ids: Sequence[str], out: Path, tracking_uri: str = "",
               frame: pl.DataFrame | None = None, cache_dir: Path | None = None, selection: Selection | None = None,
               log_to_run: bool = False) -> Path:
    """Seen–unseen accuracy curves, one panel per benchmark, one curve per method (at most 8 a panel).

    ``run_ids`` plots exactly those runs; otherwise ``selection`` (default: the main table's runs)."""
    from zslbench.metrics import ausuc, gzsl_metrics
    from zslbench.results.scores import load_scores

    out = check_output(out)
    selection = Selection(runs=tuple(run_ids)) if run_ids else selection
    runs = _selected(experiment, tracking_uri, frame, selection, "curves")
    if runs.is_empty():
        raise UserError(f"experiment {experiment!r} has no result runs to plot; run `zslbench run` first "
                        "(or pick runs with --run/--parent)")
    runs = runs.with_columns(pl.Series("benchmark", benchmark_labels(runs), dtype=pl.Utf8))
    benchmarks = sorted(runs["benchmark"].unique().to_list())
    plt = _pyplot()
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.6 * len(benchmarks), 4.4), squeeze=False)
    plotted: list[str] = []
    for axis, benchmark in zip(axes[0], benchmarks):
        curves = curve_runs(runs.filter(pl.col("benchmark") == benchmark))
        if len(curves) > MAX_CURVES:
            from zslbench.results.frames import warn

            warn(f"{benchmark}: {len(curves)} configurations, the first {MAX_CURVES} are plotted; "
                 "choose with --run/--parent/--tag")
            curves = curves[:MAX_CURVES]
        colors = sns.color_palette("colorblind", len(curves))
        top_u, top_s = 1.0, 1.0
        for index, (color, (label, record)) in enumerate(zip(colors, curves)):
            scores = load_scores(record["run_id"], tracking_uri, cache_dir)
            space = record.get("gamma_space") or "logit"
            area, curve = ausuc(scores, space=space)
            u, s = 100 * curve.u, 100 * curve.s
            top_u, top_s = max(top_u, float(u.max())), max(top_s, float(s.max()))
            axis.plot(u, s, color=color, lw=1.5, ls=LINE_STYLES[index % len(LINE_STYLES)],
                      marker=MARKERS[index % len(MARKERS)], markevery=max(1, len(u) // 6) + index, markersize=4,
                      label=f"{label} (AUSUC {100 * area:.1f})")
            gamma = record.get("gamma")
            gamma = float(gamma) if gamma is not None and math.isfinite(gamma) else 0.0
            point = gzsl_metrics(scores, gamma=gamma, space=space)
            axis.scatter([100 * point.u], [100 * point.s], color=color, marker="*", s=110, zorder=3,
                         edgecolor="black", linewidth=0.5)
            plotted.append(record["run_id"])
        axis.scatter([], [], marker="*", color="grey", edgecolor="black", s=110, label="chosen γ (U, S)")
        axis.set_xlim(0, min(100.0, top_u * 1.05))
        axis.set_ylim(0, min(100.0, top_s * 1.05))
        axis.set_xlabel("unseen accuracy U (%)")
        axis.set_ylabel("seen accuracy S (%)")
        axis.set_title(benchmark)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.suptitle("Seen–unseen accuracy curves (calibrated stacking, γ swept)", y=1.02)
    save_figure(fig, out)
    if log_to_run:
        for run_id in plotted:
            log_plot(run_id, out, tracking_uri)
    return out


# --------------------------------------------------------------------------- kept patches
def patch_size_of(model_cfg: Any) -> int:
    """The ViT patch size: ``model.patch_size``, else the backbone name's (``vit_base_patch16_224`` → 16)."""
    size = int(getattr(model_cfg, "patch_size", 0) or 0)
    if size:
        return size
    found = re.search(r"patch(\d+)", str(getattr(model_cfg, "backbone", "")))
    if not found:
        raise UserError("cannot tell the run's patch size (model.patch_size is 0 and the backbone name has none)")
    return int(found.group(1))


def _mask_path(masks_dir: Path, relative: str) -> Path:
    parts = Path(relative).parts
    return masks_dir / Path(*parts[1:]) if parts and parts[0] == "images" else masks_dir / relative


def _split_array(scores: "Scores", tag: str, part: str) -> np.ndarray | None:
    """The ``part`` array (``scores``, ``labels`` or ``kept``) of split ``tag`` (``test_seen``/``test_unseen``)."""
    return getattr(scores, f"{part}_{tag.removeprefix('test_')}")


def plot_patches(run_id: str, out: Path, count: int = 8, tracking_uri: str = "", data_root: Path | None = None,
                 cache_dir: Path | None = None, log_to_run: bool = False) -> Path:
    """A grid of test images (half unseen, half seen) with the run's kept super-patches highlighted."""
    from PIL import Image

    from zslbench.config import Config
    from zslbench.data.masks import load_mask, resize_nearest
    from zslbench.engine.run_data import load_run_data
    from zslbench.results.scores import RESOLVED_ARTIFACT, download_artifact, load_scores

    out = check_output(out)
    scores = load_scores(run_id, tracking_uri, cache_dir)
    if scores.kept_seen is None and scores.kept_unseen is None:
        raise UserError(f"run {run_id} stored no kept super-patches (test_*_kept); only SVIP runs have them")
    cfg = Config.from_yaml(download_artifact(run_id, RESOLVED_ARTIFACT, tracking_uri, cache_dir))
    if data_root is not None:
        cfg.data.root = str(data_root)
    data = load_run_data(cfg)
    split, image_root = data.split, data.image_root
    img_size, patch = int(cfg.model.img_size), patch_size_of(cfg.model)
    half_grid = img_size // patch // 2
    picks: list[tuple[str, int, int]] = []  # (split, position in the split, image index)
    for tag in ("test_unseen", "test_seen"):
        if _split_array(scores, tag, "kept") is None:
            continue
        indices = split.split(tag)
        n = min(len(indices), max(1, count // 2 if tag == "test_unseen" else count - len(picks)))
        for position in np.linspace(0, len(indices) - 1, n).round().astype(int):
            picks.append((tag, int(position), int(indices[position])))
    plt = _pyplot()
    columns = min(4, len(picks))
    rows = math.ceil(len(picks) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.95 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (tag, position, index) in zip(axes.ravel(), picks):
        path = split.image_path(index, image_root)
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB").resize((img_size, img_size), Image.BILINEAR))
        except OSError:
            raise UserError(f"image {path} of run {run_id} cannot be read; pass --data-root where its dataset "
                            "lives (or run `zslbench data check`)") from None
        kept = np.asarray(_split_array(scores, tag, "kept")[position], dtype=bool).reshape(half_grid, half_grid)
        shade = np.kron(~kept, np.ones((2 * patch, 2 * patch), dtype=bool))[:img_size, :img_size]
        shown = pixels.astype(np.float32) / 255.0
        shown[shade] *= 0.35  # dim what SVIP contextualises; kept super-patches stay bright
        axis.imshow(shown, interpolation="nearest")
        for r, c in zip(*np.nonzero(kept)):
            axis.add_patch(plt.Rectangle((c * 2 * patch - 0.5, r * 2 * patch - 0.5), 2 * patch, 2 * patch,
                                         fill=False, edgecolor="#ffd400", linewidth=0.8))
        if data.masks_dir is not None:
            mask_file = _mask_path(data.masks_dir, split.image_files[index])
            if mask_file.is_file():
                mask = resize_nearest(load_mask(mask_file), img_size) > 0
                axis.contour(mask.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=1.0)
        label = int(_split_array(scores, tag, "labels")[position])
        predicted = int(np.argmax(_split_array(scores, tag, "scores")[position]))
        name = split.class_names[label] if label < len(split.class_names) else str(label)
        verdict = "✓" if predicted == label else "✗"
        axis.set_title(f"{'unseen' if tag == 'test_unseen' else 'seen'}: {name[:18]} {verdict}\n"
                       f"{int(kept.sum())}/{kept.size} kept", fontsize=7)
    legend = "yellow boxes: kept super-patches; dimmed: contextualised"
    if data.masks_dir is not None:
        legend += "; cyan: creature outline (ground truth)"
    fig.suptitle(f"SVIP patch selection — run {run_id[:8]} ({cfg.data.dataset})\n{legend}", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)
    if log_to_run:
        log_plot(run_id, out, tracking_uri)
    return out


__all__ = ["check_output", "curve_runs", "log_plot", "patch_size_of", "plot_ausuc", "plot_patches",
           "plot_sensitivity", "run_label", "save_figure", "sensitivity_frame"]
