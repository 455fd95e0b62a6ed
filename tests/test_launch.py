"""The SLURM launcher without a cluster: where settings come from, how bad settings are refused, what a job
does when SLURM warns or stops it, and how a launch whose jobs vanish from the queue ends (never waited for
forever). The cluster itself is exercised by tests/test_slurm.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zslbench.config import resolve
from zslbench.core.errors import JobsFailed, UserError
from zslbench.launch import jobs as jobs_module
from zslbench.launch import watch
from zslbench.launch.jobs import ClusterJob, JobGaveUp, JobInterrupted, interruptions, warning_signal
from zslbench.launch.launches import Launch
from zslbench.launch.settings import SlurmOptions, resolve_settings


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """An empty environment for the settings: no site file, no ZSLBENCH_SLURM_* variables."""
    for name in list(os.environ):
        if name.startswith("ZSLBENCH_SLURM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "config" / "zslbench" / "slurm.yaml"
    path.parent.mkdir(parents=True)
    return path


def test_resources_follow_the_run_a_cub_job_asks_for_one_gpu(site):
    cub = resolve_settings(resolve("svip", "CUB"))
    assert (cub.gpus_per_job, cub.cpus_per_job, cub.mem, cub.time_minutes) == (1, 8, "32G", 24 * 60)
    synth = resolve_settings(resolve("svip", "synth"))
    assert synth.gpus_per_job == 0 and "gpus-per-node" not in synth.sbatch_options()
    on_cpu = resolve_settings(resolve("svip", "CUB", overrides=["train.device=cpu"]))
    assert on_cpu.gpus_per_job == 0
    loaders = resolve_settings(resolve("svip", "synth", overrides=["data.num_workers=5"]))
    assert loaders.cpus_per_job == 6


def test_site_file_then_environment_then_options(site, monkeypatch):
    site.write_text("partition: gpu\naccount: lab\ntime: '4:00:00'\nslurm_args: {constraint: a100}\n")
    cfg = resolve("svip", "CUB")
    settings = resolve_settings(cfg)
    assert (settings.partition, settings.account, settings.time_minutes) == ("gpu", "lab", 240)
    assert settings.sbatch_options()["constraint"] == "a100"
    monkeypatch.setenv("ZSLBENCH_SLURM_PARTITION", "long")
    monkeypatch.setenv("ZSLBENCH_SLURM_SLURM_ARGS", "exclusive,nodelist=n1")
    settings = resolve_settings(cfg)
    assert settings.partition == "long" and settings.account == "lab"
    assert settings.slurm_args == {"constraint": "a100", "exclusive": True, "nodelist": "n1"}
    settings = resolve_settings(cfg, SlurmOptions(partition="short", gpus_per_job=2, time="30", mem="64g"))
    assert (settings.partition, settings.gpus_per_job, settings.time_minutes, settings.mem) == ("short", 2, 30, "64G")
    options = settings.sbatch_options()
    assert options["partition"] == "short" and options["gpus-per-node"] == 2 and options["requeue"] is True


@pytest.mark.parametrize("text, message", [
    ("partiton: gpu\n", "unknown setting(s) partiton"),
    ("- gpu\n", "must hold a mapping"),
    ("time: soon\n", "is not a SLURM time"),
    ("gpus_per_job: -1\n", "0 or more"),
    ("cpus_per_job: 0\n", "at least 1"),
    ("mem: lots\n", "not a SLURM memory size"),
    ("slurm_args: [--array=1-4]\n", "'array' cannot be set this way"),
    ("partition: two words\n", "not a valid name"),
    ("poll_seconds: 0\n", "between 0 and 86400"),
])
def test_bad_site_settings_are_one_line_naming_the_file(site, text, message):
    site.write_text(text)
    with pytest.raises(UserError) as caught:
        resolve_settings(resolve("svip", "synth"))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("options, message", [
    (SlurmOptions(time="1:2:3:4"), "--time: '1:2:3:4' is not a SLURM time"),
    (SlurmOptions(mem="0G"), "--mem"),
    (SlurmOptions(slurm_args=("output=x.log",)), "'output' cannot be set this way"),
    (SlurmOptions(slurm_args=("--qos=high",)), "use --qos"),
    (SlurmOptions(slurm_args=("=x",)), "is not an sbatch option"),
])
def test_bad_options_name_the_option(site, options, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_settings(resolve("svip", "synth"), options)


def cli(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "ZSLBENCH_DATA": str(cwd / "data"), **env}, timeout=300)


def test_launcher_slurm_without_slurm_is_one_line_and_creates_nothing(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with python but no SLURM commands
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")
    work = tmp_path / "work"
    work.mkdir()
    proc = cli(["run", "--preset", "tiny", "--launcher", "slurm"], work, {"PATH": str(bin_dir)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "sbatch" in proc.stderr and "--launcher local" in proc.stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--partition", "gpu"], "apply to --launcher slurm"),
    (["--no-wait"], "apply to --launcher slurm"),
    (["--launcher", "pbs"], "unknown launcher 'pbs'"),
    (["--launcher", "slurm", "--nproc", "2"], "drop --nproc"),
    (["--launcher", "slurm", "--resume", "last"], "drop --resume"),
])
def test_launcher_option_mistakes_are_one_line(tmp_path, args, message):
    proc = cli(["run", "--preset", "tiny", *args], tmp_path, {})
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- inside a job
def test_slurm_warning_and_sigterm_interrupt_once():
    with pytest.raises(JobInterrupted) as warned:
        with interruptions():
            os.kill(os.getpid(), warning_signal())
            time.sleep(1)  # the handler raises here at the latest
    assert warned.value.requeue and isinstance(warned.value, KeyboardInterrupt)
    with pytest.raises(JobInterrupted) as stopped:
        with interruptions():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here at the latest
    assert not stopped.value.requeue
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back


class Sleeper(ClusterJob):
    """A job that waits for SLURM's warning; ``progress`` says whether it saved anything meanwhile."""

    progress: bool = True

    def work(self):
        os.kill(os.getpid(), warning_signal())
        time.sleep(1)
        return "finished"

    def made_progress(self, since: float) -> bool:
        return self.progress


def test_a_warned_job_requeues_itself_and_exits_without_a_result(monkeypatch):
    asked = []
    monkeypatch.setattr("zslbench.launch.cluster.requeue", lambda job_id: asked.append(job_id) or True)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    with pytest.raises(SystemExit) as exited:
        Sleeper(time_minutes=60, signal_seconds=120)()
    assert exited.value.code == 0 and asked == ["41_3"]


class Clock:
    """Stands in for the time module inside zslbench.launch.jobs: the given readings, in turn."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = iter(readings)

    def time(self) -> float:
        return next(self.readings)


def test_a_job_at_its_time_limit_without_progress_gives_up_instead_of_looping(monkeypatch):
    asked = []
    monkeypatch.setattr("zslbench.launch.cluster.requeue", lambda job_id: asked.append(job_id) or True)
    monkeypatch.setattr(jobs_module, "time", Clock([0.0, 3600.0]))  # started at 0, warned at the very end
    job = Sleeper(time_minutes=60, signal_seconds=120)
    job.progress = False
    with pytest.raises(JobGaveUp, match="raise --time"):
        job()
    assert asked == []
    job = Sleeper(time_minutes=60, signal_seconds=120)  # the same, with an epoch saved: requeued
    monkeypatch.setattr(jobs_module, "time", Clock([0.0, 3600.0]))
    with pytest.raises(SystemExit):
        job()
    assert len(asked) == 1


def test_a_failed_requeue_is_a_job_error_not_a_silent_exit(monkeypatch):
    monkeypatch.setattr("zslbench.launch.cluster.requeue", lambda job_id: False)
    with pytest.raises(JobGaveUp, match="scontrol requeue"):
        Sleeper(time_minutes=60, signal_seconds=120)()


# --------------------------------------------------------------------------- following a launch
def test_jobs_that_leave_the_queue_without_a_trace_end_the_launch(tmp_path, monkeypatch):
    """Without accounting storage (sacct fails) a cancelled job is neither in the queue nor has a result: after a
    few polls it counts as gone, and the launch fails in one line instead of waiting forever."""
    monkeypatch.setattr(watch, "queue_states", lambda ids: {})
    monkeypatch.setattr(watch, "accounting_states", lambda ids: None)
    monkeypatch.setattr(watch, "close_task_runs", lambda launch, tasks: 0)
    launch = Launch(id="L", kind="run", folder=str(tmp_path), created=0.0, command="zslbench run",
                    labels=["seed 0"], job_ids=["77_0"])

    class Quiet:
        def print(self, *args, **kwargs):
            pass

        def status(self, *args, **kwargs):
            import contextlib

            class Status(contextlib.nullcontext):
                def update(self, *args):
                    pass

            return Status()

    watcher, states = watch.wait(launch, Quiet(), poll_seconds=0.0)
    assert [s.state for s in states] == ["GONE"]
    with pytest.raises(JobsFailed) as failed:
        watch.results(watcher, states)
    message = str(failed.value)
    assert "seed 0 (job 77_0) ended GONE" in message and "sacct unavailable" in message
    assert str(tmp_path / "77_0_0_log.err") in message and "\n" not in message


def test_a_finished_job_seen_only_in_the_queue_is_believed_on_the_second_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "queue_states", lambda ids: {"78_0": ("CANCELLED", "None")})
    monkeypatch.setattr(watch, "accounting_states", lambda ids: None)
    launch = Launch(id="L", kind="run", folder=str(tmp_path), created=0.0, command="zslbench run",
                    labels=["seed 0"], job_ids=["78_0"])
    watcher = watch.Watcher(launch)
    assert watcher.poll()[0].state == "COMPLETING"  # a result file may still be on its way
    assert watcher.poll()[0].state == "CANCELLED"


def test_tracking_credentials_travel_by_environment_not_in_the_job_file(monkeypatch):
    """A job file (a pickle on a shared filesystem) never holds a tracking password; sbatch exports it."""
    import cloudpickle

    from zslbench.launch import RunJob

    cfg = resolve("svip", "synth", overrides=["track.uri=http://zsl:s3cret-pw@mlflow.lab:5000"])
    job = RunJob(label="seed 0", cfg=cfg)
    environ: dict = {}
    job.move_secrets(environ)
    assert environ["MLFLOW_TRACKING_URI"] == "http://zsl:s3cret-pw@mlflow.lab:5000"
    assert b"s3cret-pw" not in cloudpickle.dumps(job) and job.cfg.track.uri == ""
    plain = RunJob(label="seed 0", cfg=resolve("svip", "synth", overrides=["track.uri=sqlite:///mlflow.db"]))
    plain.move_secrets(environ := {})
    assert environ == {} and plain.cfg.track.uri == "sqlite:///mlflow.db"


def test_dry_run_shows_what_each_job_would_ask_for(tmp_path):
    proc = cli(["run", "--dataset", "CUB", "--launcher", "slurm", "--dry-run", "--partition", "gpu",
                "--slurm-arg", "constraint=a100"], tmp_path, {"COLUMNS": "200", "XDG_CONFIG_HOME": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    assert "SLURM, one job per seed: partition gpu · 1 GPU · 8 CPUs · 32G · 1440 min · constraint=a100" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_more_than_one_gpu_per_job_is_refused_before_anything_happens(tmp_path, monkeypatch):
    """A job trains one run on one GPU: asking for more would hold GPUs nothing uses."""
    from zslbench.launch import prepare

    monkeypatch.setattr("zslbench.launch.start.require_slurm", lambda: None)
    submitted = []
    monkeypatch.setattr("zslbench.launch.start.check_submission", lambda *args: submitted.append(args))
    with pytest.raises(UserError, match="--gpus-per-job 2: a job trains one run on one GPU"):
        prepare(resolve("svip", "CUB"), SlurmOptions(gpus_per_job=2), "zslbench-run")
    assert submitted == []
