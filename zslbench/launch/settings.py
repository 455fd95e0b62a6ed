"""What a SLURM job asks for, and where each setting comes from.

Resolution order, later wins (the same for ``run``, ``ablate`` and ``sweep``):

1. defaults from the resolved run config (:func:`resource_defaults`): a run on CUB, AWA2 or SUN (the model's
   paper preset, ``train.device`` auto or cuda) asks for one GPU, eight CPUs, 32G and a day; a run on the
   synthetic benchmark or on the CPU asks for no GPU, four CPUs, 8G and two hours;
2. the site file ``$ZSLBENCH_SLURM_CONFIG``, else ``$XDG_CONFIG_HOME/zslbench/slurm.yaml`` (default
   ``~/.config/zslbench/slurm.yaml``): a mapping of the keys of :data:`KEYS`;
3. environment variables ``ZSLBENCH_SLURM_<KEY>`` (e.g. ``ZSLBENCH_SLURM_PARTITION=gpu``);
4. the command's options (``--partition``, ``--gpus-per-job``, …, ``--slurm-arg key=value``).

Settings that SLURM itself has defaults for (partition, account, qos) stay unset unless given, so sbatch's own
defaults (the cluster's default partition, ``$SBATCH_PARTITION``, ``$SBATCH_ACCOUNT``) apply.

>>> parse_time("90"), parse_time("1:30:00"), parse_time("2-00:00"), parse_time("45:30")
(90, 90, 2880, 46)
>>> parse_slurm_args(["constraint=a100", "exclusive"])
{'constraint': 'a100', 'exclusive': True}
>>> settings = SlurmSettings(partition="gpu", gpus_per_job=1, cpus_per_job=8, mem="32G", time_minutes=60)
>>> settings.sbatch_options()["gpus-per-node"], settings.sbatch_options()["partition"]
(1, 'gpu')
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from zslbench.core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.config import Config

ENV_PREFIX = "ZSLBENCH_SLURM_"
CONFIG_ENV = "ZSLBENCH_SLURM_CONFIG"
REAL_DATASETS = ("CUB", "AWA2", "SUN")

#: sbatch options zslbench sets itself (the job array, logs, the warning signal): not accepted in --slurm-arg.
MANAGED = {"array": "the job array is one task per seed, cell or worker", "output": "logs go to the launch folder",
           "error": "logs go to the launch folder", "signal": "--signal is set from signal_seconds",
           "open-mode": "logs are appended across requeues", "wrap": "the job runs zslbench",
           "job-name": "jobs are named zslbench-<command>", "requeue": "jobs must be requeue-able to survive preemption",
           "no-requeue": "jobs must be requeue-able to survive preemption",
           "partition": "use --partition", "account": "use --account", "qos": "use --qos", "time": "use --time",
           "mem": "use --mem", "cpus-per-task": "use --cpus-per-job", "gpus-per-node": "use --gpus-per-job"}


@dataclass
class SlurmSettings:
    """One job's request to SLURM, and how the launcher talks to the cluster.

    ``signal_seconds``: SLURM sends the job its warning signal (``--signal``) this long before the time limit;
    the job then stops, keeps its last epoch checkpoint and requeues itself. ``poll_seconds``: how often the
    submitting command asks the queue how its jobs are doing. ``folder``: where each launch keeps its job
    files and logs (on a filesystem the compute nodes share).
    """

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_job: int = 0
    cpus_per_job: int = 4
    mem: Optional[str] = "8G"
    time_minutes: int = 120
    slurm_args: dict[str, Any] = field(default_factory=dict)
    folder: str = "slurm"
    signal_seconds: int = 120
    poll_seconds: float = 10.0

    def sbatch_options(self) -> dict[str, Any]:
        """The sbatch options of every job (``--key=value``; ``True`` = a bare flag), user extras last."""
        options: dict[str, Any] = {"requeue": True, "cpus-per-task": self.cpus_per_job}
        for key, value in (("partition", self.partition), ("account", self.account), ("qos", self.qos),
                           ("mem", self.mem)):
            if value:
                options[key] = value
        if self.gpus_per_job:
            options["gpus-per-node"] = self.gpus_per_job
        return {**options, **self.slurm_args}

    def describe(self) -> str:
        """One line for the terminal, e.g. ``partition gpu · 1 GPU · 8 CPUs · 32G · 60 min``."""
        parts = [f"partition {self.partition or '(cluster default)'}"]
        parts += [f"account {self.account}"] if self.account else []
        parts += [f"qos {self.qos}"] if self.qos else []
        parts += [f"{self.gpus_per_job} GPU{'s' if self.gpus_per_job != 1 else ''}",
                  f"{self.cpus_per_job} CPU{'s' if self.cpus_per_job != 1 else ''}"]
        parts += [self.mem] if self.mem else []
        parts.append(f"{self.time_minutes} min")
        parts += [f"{k}={v}" if v is not True else k for k, v in self.slurm_args.items()]
        return " · ".join(parts)


#: The keys of the site file and of ``ZSLBENCH_SLURM_<KEY>``, with how each is read.
KEYS = {
    "partition": "text", "account": "text", "qos": "text", "gpus_per_job": "count", "cpus_per_job": "positive",
    "mem": "memory", "time": "time", "slurm_args": "args", "folder": "text", "signal_seconds": "positive",
    "poll_seconds": "seconds",
}


@dataclass
class SlurmOptions:
    """The SLURM options of one command line (None = not given)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_job: Optional[int] = None
    cpus_per_job: Optional[int] = None
    mem: Optional[str] = None
    time: Optional[str] = None
    slurm_args: Sequence[str] = ()

    def given(self) -> dict[str, Any]:
        values = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "slurm_args"}
        if self.slurm_args:
            values["slurm_args"] = list(self.slurm_args)
        return values


# --------------------------------------------------------------------------- resolution
def resource_defaults(cfg: "Config") -> dict[str, Any]:
    """What a job of ``cfg`` asks for unless told otherwise (step 1 of the resolution order)."""
    device = cfg.train.device
    wants_gpu = device.startswith("cuda") or (device == "auto" and cfg.data.dataset in REAL_DATASETS)
    if wants_gpu:
        defaults = {"gpus_per_job": 1, "cpus_per_job": 8, "mem": "32G", "time": 24 * 60}
    else:
        defaults = {"gpus_per_job": 0, "cpus_per_job": 4, "mem": "8G", "time": 120}
    if cfg.data.num_workers > 0:  # the data loader's workers and the training process (-1: one per core given)
        defaults["cpus_per_job"] = cfg.data.num_workers + 1
    return defaults


def site_file() -> Path:
    """The site file: ``$ZSLBENCH_SLURM_CONFIG``, else ``$XDG_CONFIG_HOME/zslbench/slurm.yaml``."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "zslbench" / "slurm.yaml"


def read_site_file(path: Path) -> dict[str, Any]:
    """The site file's settings (none when it does not exist); anything unknown is a one-line error."""
    import yaml

    if not path.is_file():
        if os.environ.get(CONFIG_ENV):
            raise UserError(f"{CONFIG_ENV}={path} does not exist; create it or unset {CONFIG_ENV}")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"SLURM site file {path} cannot be read ({exc.__class__.__name__}); fix it or move it "
                        "away") from None
    if not isinstance(data, Mapping):
        raise UserError(f"SLURM site file {path} must hold a mapping of settings, e.g. `partition: gpu`")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise UserError(f"SLURM site file {path}: unknown setting(s) {', '.join(unknown)}; valid settings: "
                        f"{', '.join(KEYS)}")
    return {str(k): v for k, v in data.items() if v is not None}


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``ZSLBENCH_SLURM_<KEY>`` values (``SLURM_ARGS`` is comma-separated ``key=value``)."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for key in KEYS:
        value = environ.get(ENV_PREFIX + key.upper())
        if value:
            found[key] = [item for item in value.split(",") if item.strip()] if key == "slurm_args" else value
    return found


def resolve_settings(cfg: Optional["Config"] = None, options: SlurmOptions | None = None,
                     environ: Mapping[str, str] | None = None) -> SlurmSettings:
    """The settings of a launch: defaults from ``cfg`` (none without one), the site file, the environment, then
    ``options``."""
    settings = SlurmSettings()
    defaults = resource_defaults(cfg) if cfg is not None else {}
    layers = [("the run's config", defaults), (str(site_file()), read_site_file(site_file())),
              ("the environment", environment_settings(environ)), ("the command line", (options or SlurmOptions()).given())]
    for source, values in layers:
        for key, value in values.items():
            _apply(settings, key, value, source)
    return settings


#: The command-line option of each setting (for messages).
OPTIONS = {"partition": "--partition", "account": "--account", "qos": "--qos", "gpus_per_job": "--gpus-per-job",
           "cpus_per_job": "--cpus-per-job", "mem": "--mem", "time": "--time", "slurm_args": "--slurm-arg"}


def _apply(settings: SlurmSettings, key: str, value: Any, source: str) -> None:
    kind = KEYS[key]
    if source == "the command line":
        where = OPTIONS[key]
    elif source == "the environment":
        where = f"${ENV_PREFIX}{key.upper()}"
    else:
        where = f"SLURM setting {key} (from {source})"
    if kind == "text":
        text = str(value).strip()
        if not text or any(c.isspace() for c in text):
            raise UserError(f"{where}: {value!r} is not a valid name; give one word, e.g. gpu")
        setattr(settings, key, text)
    elif kind in ("count", "positive"):
        number = _integer(value, where)
        if number < (1 if kind == "positive" else 0):
            raise UserError(f"{where} must be {'at least 1' if kind == 'positive' else '0 or more'}, got {value!r}")
        setattr(settings, key, number)
    elif kind == "seconds":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: {value!r} is not a number of seconds") from None
        if not (0 < seconds < 86400):
            raise UserError(f"{where} must be between 0 and 86400 seconds, got {value!r}")
        settings.poll_seconds = seconds
    elif kind == "memory":
        settings.mem = parse_mem(value, where)
    elif kind == "time":
        settings.time_minutes = parse_time(value, where)
    else:  # args
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, Mapping):
            items = [f"{k}={v}" if v is not True else str(k) for k, v in value.items()]
        settings.slurm_args.update(parse_slurm_args([str(item) for item in items], where))


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise UserError(f"{where}: {value!r} is not a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise UserError(f"{where}: {value!r} is not a whole number") from None


# --------------------------------------------------------------------------- formats
_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<rest>\d+(?::\d+){0,2})$")


def parse_time(value: Any, where: str = "--time") -> int:
    """A SLURM time limit in whole minutes (rounded up): ``MIN``, ``MIN:SEC``, ``H:MIN:SEC``, ``D-H``,
    ``D-H:MIN`` or ``D-H:MIN:SEC``."""
    text = str(value).strip()
    match = _TIME.match(text)
    if not match:
        raise UserError(f"{where}: {value!r} is not a SLURM time; give minutes (90) or H:MM:SS (1:30:00) or "
                        "D-HH:MM (2-00:00)")
    parts = [int(p) for p in match["rest"].split(":")]
    if match["days"] is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = (parts + [0, 0])[:3]
        total = int(match["days"]) * 86400 + hours * 3600 + minutes * 60 + seconds
    elif len(parts) == 1:
        total = parts[0] * 60
    elif len(parts) == 2:
        total = parts[0] * 60 + parts[1]
    else:
        total = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if total <= 0:
        raise UserError(f"{where}: {value!r} is no time at all; give a positive time limit")
    return math.ceil(total / 60)


_MEM = re.compile(r"^\d+[KMGT]?$")


def parse_mem(value: Any, where: str = "--mem") -> str:
    """A SLURM memory size (``16G``, ``4000M``, ``4000`` = megabytes), upper-cased."""
    text = str(value).strip().upper().removesuffix("B")
    if not _MEM.match(text) or int(re.sub(r"\D", "", text)) == 0:
        raise UserError(f"{where}: {value!r} is not a SLURM memory size; give e.g. 16G or 4000M")
    return text


_ARG_KEY = re.compile(r"^[a-z][a-z0-9-]*$")


def parse_slurm_args(items: Sequence[str], where: str = "--slurm-arg") -> dict[str, Any]:
    """``key=value`` (or a bare ``key`` flag) items as sbatch options, keys without leading dashes."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).strip().partition("=")
        key = key.strip().removeprefix("--")
        if not _ARG_KEY.match(key) or (sep and not value.strip()):
            raise UserError(f"{where}: {item!r} is not an sbatch option; give key=value without dashes, "
                            "e.g. constraint=a100 (or a bare flag, e.g. exclusive)")
        if key in MANAGED:
            raise UserError(f"{where}: {key!r} cannot be set this way ({MANAGED[key]})")
        parsed[key] = value.strip() if sep else True
    return parsed


__all__ = ["CONFIG_ENV", "ENV_PREFIX", "KEYS", "SlurmOptions", "SlurmSettings", "environment_settings",
           "parse_mem", "parse_slurm_args", "parse_time", "read_site_file", "resolve_settings", "resource_defaults",
           "site_file"]
