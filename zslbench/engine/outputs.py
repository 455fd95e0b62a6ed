"""What a run will write, checked before anything is created — no data generated, no MLflow run, no run
folder — so that a path the run cannot use is one line (exit 2) at the start, not a traceback at the end:

* every text value of the config, the data root, the run folders and the tracking URI are UTF-8 (MLflow
  stores params, tags and paths as UTF-8 text: a path with another byte fails at ``log_params``);
* the run folders' folder (``track.output_dir``, default ``./runs``) can be created and written;
* the experiment name fits: MLflow's own limit (500 characters), and for a sqlite store the artifact
  folder named after it (``mlruns/<experiment>``) within the file system's 255-byte name limit;
* the ``--json`` file can be written.

>>> from zslbench.config import resolve
>>> check_run_outputs(resolve(overrides=["track.experiment=" + "x" * 300, "track.uri=sqlite:////tmp/m.db"]))
Traceback (most recent call last):
...
zslbench.core.errors.UserError: track.experiment is 300 characters long: its artifacts would go to a folder named after it (mlruns/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…), longer than the 255 bytes a file name may have; choose a shorter --experiment
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zslbench.config import Config
from zslbench.core.errors import UserError
from zslbench.core.files import check_output_file, check_output_folder, check_utf8

#: MLflow's limit on experiment names; longer ones are refused by its stores.
MAX_EXPERIMENT_NAME = 500
#: The longest file name (bytes) common file systems take (NAME_MAX).
MAX_NAME_BYTES = 255


def check_run_outputs(cfg: Config, json_file: Path | None = None) -> None:
    """One-line :class:`UserError` for the first output path or text of ``cfg`` a run could not write."""
    from zslbench.config.resolve import default_data_root

    for key, value in cfg.flat().items():
        for text in _texts(value):
            check_utf8(key, text)
    check_utf8("the data root", str(Path(cfg.data.root or default_data_root()).absolute()))
    check_utf8("track.output_dir", str(Path(cfg.track.output_dir or "runs").absolute()))
    check_output_folder(Path(cfg.track.output_dir or "runs"), "track.output_dir (where run folders go)")
    if cfg.track.enabled:
        from zslbench.tracking.store import resolve_tracking_uri

        uri = resolve_tracking_uri(cfg.track.uri)
        check_utf8("the tracking URI", uri)
        check_experiment_name(cfg.track.experiment, uri)
    if json_file is not None and str(json_file) != "-":
        check_utf8("--json", str(json_file))
        check_output_file(json_file, "--json")


def check_experiment_name(name: str, uri: str) -> None:
    """The experiment ``name`` fits MLflow's limit and, for a sqlite store, a folder name."""
    if len(name) > MAX_EXPERIMENT_NAME:
        raise UserError(f"track.experiment is {len(name)} characters long; MLflow takes at most "
                        f"{MAX_EXPERIMENT_NAME}: choose a shorter --experiment")
    from zslbench.tracking.store import default_artifact_location

    location = default_artifact_location(uri, name)
    if location is None:  # a server or database store names its artifact folders itself
        return
    folder = location.rstrip("/").rsplit("/", 1)[-1]
    if len(folder.encode("utf-8")) > MAX_NAME_BYTES:
        raise UserError(f"track.experiment is {len(name)} characters long: its artifacts would go to a folder named "
                        f"after it (mlruns/{folder[:30]}…), longer than the {MAX_NAME_BYTES} bytes a file name may "
                        "have; choose a shorter --experiment")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _texts(item)]
    return []


__all__ = ["MAX_EXPERIMENT_NAME", "check_experiment_name", "check_run_outputs"]
