"""``zslbench data``: generate, fetch, inspect, verify and embed datasets."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from zslbench.cli.app import DataRootOpt, DatasetOpt, ImageRootOpt, _console, _data_root, data_app


@data_app.command("info")
def data_info(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    image_root: Optional[Path] = ImageRootOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise a dataset directory: classes, splits, attributes, missing images.

    Example: zslbench data info --dataset CUB --data-root ../shared/data --json
    """
    from zslbench.data.inspect import dataset_summary, print_summary

    summary = dataset_summary(dataset, _data_root(data_root), image_root)
    if json_out:
        import json

        typer.echo(json.dumps(summary))
    else:
        print_summary(summary, _console())


@data_app.command("check")
def data_check(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    image_root: Optional[Path] = ImageRootOpt,
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every image (slower, catches corrupt files)."),
) -> None:
    """Verify a dataset end to end: split files, counts, every image present and decodable.

    Exit code 1 when a problem is found. Example: zslbench data check --dataset synth
    """
    from zslbench.data.inspect import check_dataset

    report = check_dataset(dataset, _data_root(data_root), image_root, decode=decode, console=_console())
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("synth")
def data_synth(
    preset: str = typer.Option("default", "--preset", "-p", help="tiny | default | paper"),
    seed: int = typer.Option(0, "--seed", help="Generator seed (the same seed gives byte-identical files)."),
    out: Optional[Path] = typer.Option(None, "--out", "--data-root", "-o",
                                       help="Data root; writes <out>/synth (synth-tiny, synth-paper for other presets) "
                                            "[default: $ZSLBENCH_DATA or ./data]"),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Worker processes [default: one per core, up to 8]."),
    force: bool = typer.Option(False, "--force", help="Regenerate even when a matching complete dataset exists."),
) -> None:
    """Generate the synthetic ZSL benchmark: xlsa17 layout, PNG images and part masks, deterministic per seed.

    An existing dataset with the same preset, seed and generator version is reused unless --force.

    Examples:

      zslbench data synth                              # ./data/synth (the `zslbench run` default)

      zslbench data synth --preset tiny --out /tmp/zsl --seed 3
    """
    from zslbench.data.synth import generate_synth, print_synth_summary

    console = _console()
    result = generate_synth(_data_root(out), preset, seed, workers=workers, force=force, console=console)
    print_synth_summary(result, console)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="xlsa17 (split files of CUB, AWA1, AWA2, SUN) | CUB | AWA2 | SUN (images) "
                                         "| w2v (published attribute word vectors) | weights (the models' paper weights)"),
    data_root: Optional[Path] = DataRootOpt,
    model: List[str] = typer.Option([], "--model", "-m", help="weights: whose paper weights (repeatable) [default: every model's]"),
    dataset: List[str] = typer.Option([], "--dataset", "-d", help="w2v: which datasets (repeatable) [default: CUB, AWA2, SUN]"),
    url: Optional[str] = typer.Option(None, "--url", help="Download from here instead (http(s)://, file:// or a local path)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected sha256 of the archive (replaces the built-in size/checksum)."),
    force: bool = typer.Option(False, "--force", help="Replace files and folders that already exist."),
    keep_archive: bool = typer.Option(False, "--keep-archive", help="Keep the downloaded archive in <data-root>/.downloads."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the `data check` of the fetched dataset(s)."),
    max_unpacked_gib: float = typer.Option(64.0, "--max-unpacked-gib", min=0.001,
                                           help="Refuse an archive that unpacks to more GiB than this."),
    max_ratio: float = typer.Option(100.0, "--max-ratio", min=1.0,
                                    help="Refuse an archive that unpacks to more than this many times its own size "
                                         "(checked past 64 MiB)."),
) -> None:
    """Download an official archive (resumable, verified) and unpack it safely into the data root.

    Existing files are never replaced without --force; a failed fetch changes nothing. Archives are checked
    end to end (CRCs, sizes, end of archive); links in them are unpacked as copies of the files they lead to
    inside the archive, or refused; an archive that expands past the limits below is refused.

    Afterwards `data check` runs (exit code 1 on problems; missing images after xlsa17 alone are expected).

    `w2v` puts the published word2vec attribute vectors (<DS>_attribute.pkl, verified by sha256) into
    <data-root>/<DS>/ (--url: the folder that holds them). `weights` puts the ImageNet weights the models'
    reference code loads into torch's hub cache ($TORCH_HOME/hub/checkpoints), checked against the sha256
    prefix of their published names (--url with --model: one model's file from a mirror; --sha256: its checksum).

    Examples:

      zslbench data fetch xlsa17 --data-root ~/zsl      # split files → ~/zsl/CUB, ~/zsl/AWA2, ~/zsl/SUN

      zslbench data fetch CUB --data-root ~/zsl         # images → ~/zsl/CUB/CUB_200_2011/images

      zslbench data fetch AWA2 --data-root ~/zsl --url file:///mnt/usb/AwA2-data.zip

      zslbench data fetch w2v --data-root ~/zsl          # CUB/AWA2/SUN word2vec attribute vectors

      zslbench data fetch weights --model svip           # ViT-B/16 ImageNet-21k→1k, as SVIP's reference
    """
    if name.lower() in ("w2v", "weights"):
        from zslbench.data.fetch.files import fetch_weights, fetch_word_vectors

        if name.lower() == "w2v":
            fetch_word_vectors(_data_root(data_root), dataset, base_url=url, console=_console())
        else:
            fetch_weights(model, url=url, sha256=sha256, console=_console())
        return
    from zslbench.data.fetch import UnpackLimits, fetch

    result = fetch(name, _data_root(data_root), url=url, sha256=sha256, force=force, keep_archive=keep_archive,
                   check=not no_check, console=_console(),
                   limits=UnpackLimits(max_gib=max_unpacked_gib, max_ratio=max_ratio))
    if result.check_failed:  # installed, but `data check` found problems (listed above)
        raise typer.Exit(1)


@data_app.command("embed")
def data_embed(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    vectors: Path = typer.Option(..., "--vectors", help="word2vec .bin(.gz) (e.g. GoogleNews-vectors-negative300.bin) or GloVe/word2vec text file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output .npy [default: <data-root>/<dataset>/attribute_w2v.npy]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file that differs."),
) -> None:
    """Build the [A, D] attribute word vectors: each cleaned attribute phrase = sum of its word vectors.

    Reads the vector file streaming and keeps only the needed words. Example:

      zslbench data embed --dataset CUB --data-root ~/zsl --vectors GoogleNews-vectors-negative300.bin
    """
    from zslbench.data.embed import build_attribute_vectors

    build_attribute_vectors(dataset, _data_root(data_root), vectors, out=out, force=force, console=_console())

