"""``zslbench run``: one or more seeds of one resolved config, tracked, checkpointed, resumable."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.config import Config
from zslbench.config.saving import saved_yaml
from zslbench.core.files import atomic_write, remove_torn_writes
from zslbench.core.faults import fault_point
from zslbench.core.errors import RunStopped, TrainingDiverged, UserError

RESOLVED = "resolved.yaml"
PRECISION = "precision.json"  # the precision chosen when the run started, kept when it resumes elsewhere
FLUSH_SECONDS = 10.0  # epoch metrics reach MLflow at least this often (and when the run ends)
FINAL = "final.json"


@dataclass
class RunResult:
    run_id: str
    out_dir: Path
    final: dict[str, Any]
    history: list[dict[str, Any]]


def run_seeds(cfg: Config, seeds: list[int], console=None, resume: str | None = None,
              parent_run_id: str | None = None, quiet: bool = False, device: str | None = None,
              tags: dict[str, str] | None = None) -> list[RunResult]:
    """Run ``cfg`` once per seed (sequentially); ``resume`` continues one interrupted run. ``tags`` are set on
    every run (e.g. the SLURM task that owns it, by which a requeued job finds its run again).

    ``device`` (``--device`` when given) also applies to a resumed run, whose saved config otherwise
    decides: a run started on ``cuda:1`` can finish on another GPU or on the CPU.
    Under ``torchrun`` every rank calls this; rank 0 alone tracks, checkpoints and prints.
    """
    from zslbench.engine import distributed
    from zslbench.engine.device import pick_device
    from zslbench.engine.outputs import check_run_outputs
    from zslbench.engine.preflight import prepare_run, seed_dependent_data
    from zslbench.tracking import check_reachable, reap_dead_runs, resolve_tracking_uri

    dist = distributed.init_from_env(pick_device(device or cfg.train.device).type, cfg.train.dist_timeout)
    if dist.main:  # output paths, texts and the experiment name, before anything is created
        check_run_outputs(cfg)
    if cfg.track.enabled and dist.main:  # fail before any data generation or training
        check_reachable(resolve_tracking_uri(cfg.track.uri))
    if resume is not None:
        out_dir = distributed.broadcast(find_resumable(Path(cfg.track.output_dir), resume) if dist.main else None)
        cfg = with_command_credentials(Config.from_yaml(out_dir / RESOLVED), cfg)
        if device is not None:
            cfg.train.device = device
    data = prepare_run(cfg, console)  # data, word vectors, weights: settled before the store is touched
    if cfg.track.enabled and dist.main:  # the store of the run's config (a resumed run's own)
        reap_dead_runs(resolve_tracking_uri(cfg.track.uri), cfg.track.experiment)
    if resume is not None:
        return [run_one(cfg, console, out_dir=out_dir, parent_run_id=parent_run_id, quiet=quiet, data=data,
                        tags=tags)]
    results = []
    for seed in seeds:
        seeded = copy.deepcopy(cfg)
        seeded.train.seed = seed
        same_data = seed == cfg.train.seed or not seed_dependent_data(cfg)
        results.append(run_one(seeded, console, parent_run_id=parent_run_id, quiet=quiet,
                               data=data if same_data else None, tags=tags))
    return results


def run_one(cfg: Config, console=None, out_dir: Path | None = None, parent_run_id: str | None = None,
            quiet: bool = False, data=None, epoch_callback=None, tags: dict[str, str] | None = None,
            validation_callback=None) -> RunResult:
    """Train and evaluate one seed; ``out_dir`` given = resume the run stored there.

    ``validation_callback(epoch, val_metrics)`` runs the validation protocol (whatever the policies) and is
    called after each of its evaluations with the ``val_*`` numbers (a sweep's objective and pruner).

    ``epoch_callback(epoch, metrics)`` is called after every epoch (after logging); raising
    :class:`~zslbench.core.errors.RunStopped` from it ends the run as KILLED (e.g. an Optuna pruner).
    ``tags`` are added to the MLflow run (e.g. a sweep's trial number).
    """
    import torch

    from zslbench.engine import distributed
    from zslbench.engine.outputs import check_run_outputs
    from zslbench.engine.run_data import load_run_data
    from zslbench.engine.device import configure_determinism, pick_device, set_matmul_precision
    from zslbench.engine.preflight import prepare_weights
    from zslbench.engine.trainer import EvalSets, Trainer, resume_state, seed_everything
    from zslbench.engine.progress import RunLog
    from zslbench.catalogue import build_model
    from zslbench.tracking import NullTracker

    dist = distributed.current()
    if dist.main:  # ablation cells and sweep trials start here: the same checks as `run`
        check_run_outputs(cfg)
    quiet = quiet or not dist.main
    device = pick_device(cfg.train.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    configure_determinism(device, cfg.train.deterministic)  # before the run's first CUDA computation
    data = data or distributed.on_main_first(lambda: load_run_data(cfg, console))  # synth generated once
    distributed.on_main_first(lambda: prepare_weights(cfg, console))  # before any run or folder is created
    if out_dir is not None and (out_dir / FINAL).exists():
        raise UserError(f"run {out_dir.name} already finished; its results are in {out_dir / FINAL}")
    if out_dir is not None and dist.main:
        remove_torn_writes(out_dir)
    state = resume_state(out_dir) if out_dir is not None else None
    # a run killed before its first checkpoint is still the MLflow run its folder is named after
    resume_run_id = (state or {}).get("run_id") or (out_dir.name if out_dir is not None else None)
    tracker = _open_tracker(cfg, data, device, parent_run_id, resume_run_id) if dist.main else NullTracker()
    fault_point("tracker_open")
    if tags:
        tracker.set_tags(tags)
    if state is not None:
        relog_missing_epochs(tracker, state["history"])
    run_id = distributed.broadcast(tracker.run_id or (state or {}).get("run_id") or _local_run_id())
    out_dir = out_dir or Path(cfg.track.output_dir) / run_id
    if dist.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not (out_dir / RESOLVED).exists():
            atomic_write(out_dir / RESOLVED, saved_yaml(cfg))  # credentials masked: never stored
        tracker.log_artifact(str(out_dir / RESOLVED))
    precision = run_precision(cfg, device, out_dir, console if not quiet else None)
    set_matmul_precision(device, precision.precision)
    tracker.set_tags(precision_tags(precision))

    seed_everything(cfg.train.seed)
    model = build_model(cfg, data.info).to(device)
    split = data.split
    sets = EvalSets(split.split("test_seen"), split.split("test_unseen"))

    last_flush = [time.monotonic()]

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        fault_point("metrics_log")
        tracker.log_metrics(mlflow_names(metrics), step=epoch)
        # Batched writes: short epochs would otherwise pay a store round trip each. Nothing is lost by
        # waiting: the checkpoint holds every epoch's metrics and a resumed run re-sends missing ones.
        if time.monotonic() - last_flush[0] >= FLUSH_SECONDS:  # the rest goes with the final metrics
            tracker.flush()
            last_flush[0] = time.monotonic()
        log.epoch(epoch, metrics)
        if epoch_callback is not None:
            epoch_callback(epoch, metrics)

    log = RunLog(console, cfg.train.epochs, quiet)  # a line per epoch; the live bar only on a terminal
    progress = log.progress
    trainer = Trainer(cfg, data, model, device, split.split("trainval"), sets, out_dir, on_epoch, progress,
                      precision=precision.precision)
    started = time.perf_counter()
    try:
        with log:
            validation = run_validation(cfg, data, device, out_dir, progress, tracker, precision=precision.precision,
                                        epoch_callback=validation_callback, log=log) \
                if needs_validation(cfg) or validation_callback is not None else None
            seed_everything(cfg.train.seed)
            if state is not None or validation is not None:  # same initial weights as an uninterrupted run
                trainer.model.load_state_dict(build_model(cfg, data.info).state_dict())
            fit = trainer.fit(resume=state, extra_state={"run_id": run_id})
    except TrainingDiverged as exc:
        tracker.set_tags({"failure": str(exc)})
        tracker.finish("FAILED")
        raise UserError(f"{exc}; the last good checkpoint is kept in {out_dir}") from None
    except RunStopped as exc:
        tracker.set_tags({"stopped": str(exc) or "stopped early"})
        tracker.finish("KILLED")
        raise
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    if not dist.main:
        return RunResult(run_id, out_dir, {}, fit.history)
    final = finalize(cfg, fit.history, run_id, out_dir, tracker, validation, data.info)
    final["builtin_gamma"] = float(getattr(model, "builtin_gamma", 0.0))  # e.g. TransZero's fixed ±1 margin
    final["train_seconds"] = fit.seconds
    final["wall_seconds"] = time.perf_counter() - started
    text = json.dumps(final, indent=2)
    tracker.log_text(text, FINAL)
    fault_point("finish")
    tracker.finish("FINISHED")
    # written last: its presence marks a run complete everywhere, so any earlier crash is resumable
    atomic_write(out_dir / FINAL, text)
    return RunResult(run_id, out_dir, final, fit.history)


def with_command_credentials(saved: Config, command: Config) -> Config:
    """A resumed run's saved config, whose tracking URI was saved with its credentials masked, takes them
    from this command's ``--tracking-uri`` when that is the same URI (else from the environment: see
    :func:`zslbench.tracking.store.with_credentials`)."""
    from zslbench.core.secrets import mask_credentials

    if command.track.uri and mask_credentials(command.track.uri) == saved.track.uri:
        saved.track.uri = command.track.uri
    return saved


def mlflow_names(metrics: dict[str, float]) -> dict[str, float]:
    """Epoch metrics under their MLflow names (``train/loss`` → ``train_loss``)."""
    return {k.replace("/", "_"): v for k, v in metrics.items()}


def relog_missing_epochs(tracker, history: list[dict[str, Any]]) -> None:
    """Send the checkpointed epochs whose metrics never reached MLflow (killed between the two)."""
    if not history:
        return
    tracker.resend_missing({int(row["epoch"]): mlflow_names({k: v for k, v in row.items()
                                                             if k != "epoch" and isinstance(v, (int, float))})
                            for row in history}, probe="train_loss")


def finalize(cfg: Config, history: list[dict[str, Any]], run_id: str, out_dir: Path, tracker,
             validation: list[dict[str, Any]] | None = None, info=None) -> dict[str, Any]:
    """Apply the epoch-selection policy (or the paper mode), log the final metrics, the selected epoch's score
    arrays and every epoch's decisions (:mod:`zslbench.engine.reporting`)."""
    from zslbench.engine.reporting import epoch_decisions, paper_final, score_scale, selected_row
    from zslbench.metrics import epochs as epoch_file, select_epoch
    from zslbench.tracking.tags import TEST_SELECTED_TAG

    evaluated = [row for row in history if "zsl_t1" in row]
    if validation is not None:  # the validation protocol's numbers, epoch by epoch
        by_epoch = {row["epoch"]: row for row in validation}
        evaluated = [{**row, **{k: v for k, v in by_epoch.get(row["epoch"], {}).items() if k.startswith("val_")}}
                     for row in evaluated]
    choice = select_epoch(evaluated, cfg.eval.selection)
    row = selected_row(evaluated, choice)
    if cfg.eval.gamma_policy == "val":
        row = {**row, **recalibrate(out_dir, int(row["epoch"]), float(row["val_gamma"]), info, cfg.eval.gamma_space)}
    final: dict[str, Any] = {k: v for k, v in row.items() if not k.startswith("train/") and k != "epoch"}
    final.update({
        "selected_epoch": int(row["epoch"]),
        "epochs": cfg.train.epochs,
        "selection": cfg.eval.selection,
        "gamma_policy": cfg.eval.gamma_policy,
        "gamma_space": cfg.eval.gamma_space,
        "oracle": bool(getattr(choice, "oracle", False) or cfg.eval.gamma_policy == "oracle"),
        "seed": cfg.train.seed,
        "run_id": run_id,
        "model": cfg.model.name,
        "dataset": cfg.data.dataset,
        "ablations": list(cfg.ablations),
        "mode": cfg.eval.mode,
    })
    decisions = epoch_decisions(out_dir, evaluated, info, score_scale(cfg))
    if cfg.eval.mode != "standard":  # the paper's numbers replace the protocol's (every metric key)
        if decisions is None:
            raise UserError(f"eval.mode={cfg.eval.mode} needs every evaluated epoch's scores under {out_dir / 'scores'}")
        final = {k: v for k, v in final.items() if not _is_metric(k)} | paper_final(cfg.eval.mode, decisions,
                                                                                   cfg.data.dataset)
        row = {"epoch": final.get("selected_epoch", row["epoch"])}
    tracker.log_metrics({f"final_{k}": float(v) for k, v in final.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=cfg.train.epochs)
    tracker.set_tags({TEST_SELECTED_TAG: "true" if final.get("oracle") else "false"})  # † in MLflow too
    fault_point("finalize")
    scores = out_dir / "scores" / f"epoch{int(row['epoch']):03d}.npz"
    if scores.exists() and cfg.track.log_scores:
        from zslbench.metrics import scores_file

        tracker.log_scores("test_scores", **scores_file.to_arrays(_stored_scores(scores, info)))
    if decisions is not None and cfg.track.log_scores:
        tracker.log_scores("epochs", **epoch_file.to_arrays(decisions))
    return final


def _is_metric(key: str) -> bool:
    """A key of an epoch's metrics (replaced wholesale by a paper mode's numbers)."""
    return key.startswith(("zsl_", "gzsl_", "ausuc", "val_", "patch_", "selected_epoch")) or key in ("gamma",
                                                                                                 "gamma_oracle")


def _stored_scores(path: Path, info=None):
    """The :class:`~zslbench.metrics.Scores` of a stored epoch with the run's class sets
    (``info.seen_classes``/``unseen_classes``; inferred from the labels without ``info``)."""
    from zslbench.metrics import scores_file

    if info is None:
        return scores_file.load(path)
    return scores_file.load(path, seen_classes=info.seen_classes, unseen_classes=info.unseen_classes)


def needs_validation(cfg: Config) -> bool:
    return cfg.eval.gamma_policy == "val" or cfg.eval.selection == "val"


def run_validation(cfg: Config, data, device, out_dir: Path, progress, tracker,
                   precision: str | None = None, epoch_callback=None, log=None) -> list[dict[str, Any]]:
    """The validation protocol (PROTOCOL.md §3): train on the train classes with 20 % of their images held
    out, treat the val classes as unseen, and record per epoch the γ that maximises validation H.

    It costs a second (smaller) training; its per-epoch numbers decide γ (policy ``val``) and the epoch
    (selection ``val``) of the main run, and a sweep's objective, so no test image is used for either choice.
    ``epoch_callback(epoch, row)`` gets each evaluated epoch's ``val_*`` row as it is computed.
    """
    import dataclasses

    from zslbench.engine import distributed
    from zslbench.engine.trainer import EvalSets, Trainer, seed_everything
    from zslbench.catalogue import build_model

    done = out_dir / "validation" / "history.json"
    if done.exists():
        return json.loads(done.read_text())
    split = data.split
    if not (split.has_split("train") and split.has_split("val")):
        raise UserError(f"the validation protocol (gamma policy / selection 'val', a sweep's objective) needs train_loc "
                        f"and val_loc, which {cfg.data.dataset} lacks; use --set eval.gamma_policy=none (or oracle, "
                        "marked †) and eval.selection=final, or `sweep --select-on test` (†)")
    protocol = split.val_protocol(seen_holdout=0.2, seed=cfg.train.seed)
    fit_idx, val_seen = np.asarray(protocol["train"]), np.asarray(protocol["val_seen"])
    info = dataclasses.replace(data.info, seen_classes=np.asarray(protocol["train_classes"], dtype=np.int64),
                               unseen_classes=np.asarray(protocol["val_classes"], dtype=np.int64))
    val_data = dataclasses.replace(data, info=info)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, info).to(device)
    history: list[dict[str, Any]] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics({f"val_{k}": v for k, v in metrics.items() if "/" not in k}, step=epoch)
        if log is not None:
            log.epoch(epoch, metrics, phase="validation")
        if epoch_callback is not None and "zsl_t1" in metrics:
            epoch_callback(epoch, _validation_row(out_dir, epoch, info, cfg.eval.gamma_space))

    trainer = Trainer(cfg, val_data, model, device, fit_idx, EvalSets(val_seen, np.asarray(protocol["val_unseen"])),
                      out_dir / "validation", on_epoch, progress, precision=precision)
    state = (out_dir / "validation" / "checkpoint.pt")
    from zslbench.engine.trainer import resume_state

    fit = trainer.fit(resume=resume_state(out_dir / "validation") if state.exists() else None)
    if not distributed.current().main:  # rank 0 wrote the score files: take its conclusions
        return distributed.broadcast(None)
    for row in fit.history:
        if "zsl_t1" in row:
            history.append(_validation_row(out_dir, int(row["epoch"]), info, cfg.eval.gamma_space))
    atomic_write(done, json.dumps(history))
    return distributed.broadcast(history)


def _validation_row(out_dir: Path, epoch: int, info, space: str) -> dict[str, Any]:
    """One validation epoch's numbers: γ best on validation data, H there, T1, AUSUC (``val_*``)."""
    from zslbench.metrics import evaluate_scores

    scores = _stored_scores(out_dir / "validation" / "scores" / f"epoch{epoch:03d}.npz", info)
    m = evaluate_scores(scores, gamma_policy="oracle", space=space)
    return {"epoch": epoch, "val_gamma": float(m["gamma"]), "val_gzsl_h": float(m["gzsl_h"]),
            "val_zsl_t1": float(m["zsl_t1"]), "val_ausuc": float(m["ausuc"])}


def recalibrate(out_dir: Path, epoch: int, gamma: float, info, space: str) -> dict[str, float]:
    """Test metrics of a stored epoch at a fixed γ (chosen on validation data)."""
    from zslbench.metrics import evaluate_scores

    metrics = evaluate_scores(_stored_scores(out_dir / "scores" / f"epoch{epoch:03d}.npz", info),
                              gamma_policy="fixed", gamma=gamma, space=space)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_precision(cfg: Config, device, out_dir: Path, console=None):
    """The run's precision: chosen from ``train.amp`` on this device when the run starts and recorded in its
    folder (``precision.json``); a run resumed on another kind of device keeps it — bf16 weights go on in bf16,
    fp32 in fp32 — and says so. Rank 0 decides for every rank."""
    from zslbench.engine import distributed
    from zslbench.engine.device import PrecisionChoice, choose_precision

    here = choose_precision(device, cfg.train.amp)
    choice = here
    if distributed.current().main:
        path = out_dir / PRECISION
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict) or recorded.get("precision") not in ("bf16", "fp32"):
            atomic_write(path, json.dumps({"precision": here.precision, "reason": here.reason, "device": str(device)}))
        elif recorded["precision"] != here.precision:
            choice = PrecisionChoice(recorded["precision"], f"{recorded.get('reason', '')} on {recorded.get('device')} "
                                     f"when the run started; kept on resuming on {device}, where it would be "
                                     f"{here.precision}")
            if console is not None:
                console.print(f"[yellow]precision:[/yellow] {choice.precision} ({choice.reason})", highlight=False)
        else:
            choice = PrecisionChoice(recorded["precision"], str(recorded.get("reason", here.reason)))
    return distributed.broadcast(choice)


def precision_tags(choice) -> dict[str, str]:
    """The MLflow tags of a run's precision decision."""
    from zslbench.engine.device import precision_name
    from zslbench.engine.preflight import PRECISION_TAG

    return {PRECISION_TAG: precision_name(None, choice.precision), f"{PRECISION_TAG}_reason": choice.reason}


def find_resumable(output_dir: Path, which: str) -> Path:
    """The run folder for ``--resume RUN_ID`` or ``--resume last`` (the newest unfinished run)."""
    if which != "last":
        path = output_dir / which
        if not (path / RESOLVED).exists():
            raise UserError(f"no run {which!r} under {output_dir}/ to resume; `--resume last` picks the newest")
        return path
    candidates = [p for p in output_dir.glob("*/") if (p / RESOLVED).exists() and not (p / FINAL).exists()]
    if not candidates:
        raise UserError(f"no unfinished run under {output_dir}/ to resume; start one with `zslbench run`")
    return max(candidates, key=lambda p: (p / RESOLVED).stat().st_mtime)


def _open_tracker(cfg: Config, data, device, parent_run_id: str | None, resume_run_id: str | None):
    from zslbench.tracking import NullTracker, open_tracker, process_tags, standard_tags

    if not cfg.track.enabled:
        return NullTracker()
    from zslbench.engine.preflight import fidelity_tags

    tags = standard_tags(cfg, data.split.fingerprint(), str(device)) | process_tags()
    tags |= fidelity_tags(cfg, device, data.split)
    name = f"{cfg.model.name}-{cfg.data.dataset}" + (f"-{'+'.join(cfg.ablations)}" if cfg.ablations else "") \
        + f"-s{cfg.train.seed}"
    return open_tracker(cfg.track, run_name=name, tags=tags, params=cfg.flat(), parent_run_id=parent_run_id,
                        resume_run_id=resume_run_id)


def _local_run_id() -> str:
    import uuid

    return uuid.uuid4().hex


