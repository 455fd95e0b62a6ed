"""The one training/evaluation loop for every registered model.

Warm-up (heads only) then full training with the per-dataset schedule, gradient clipping,
evaluation every ``eval_every`` epochs, an atomic checkpoint after every epoch, and a NaN/inf guard.
Determinism: the model is initialised from ``seed`` and every epoch reseeds all generators from
``(seed, epoch)``, so a run resumed from its last checkpoint repeats the interrupted epoch exactly
(bit for bit where the kernels are deterministic: ``train.deterministic``, docs/GPU.md).

No step waits for the accelerator: loss terms are summed where they are computed, and whether the
loss stayed finite is checked every :data:`FINITE_CHECK_EVERY` steps and at the end of the epoch
(one host synchronisation each) — a non-finite loss still stops the run before its epoch is
checkpointed, naming the first step whose loss was not finite.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from zslbench.config import Config
from zslbench.engine.checkpoint import load_checkpoint, save_checkpoint
from zslbench.engine import distributed
from zslbench.engine.batches import make_batches, superpatch_masks, to_device
from zslbench.engine.run_data import RunData
from zslbench.engine.sampling import training_loop
from zslbench.engine.device import autocast
from zslbench.core.faults import fault_point
from zslbench.core.errors import TrainingDiverged
from zslbench.metrics import Scores, evaluate_scores, scores_file

CHECKPOINT = "checkpoint.pt"
FINITE_CHECK_EVERY = 20  # steps between checks that the loss stayed finite (each costs one host sync)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**31


@dataclass
class EvalSets:
    """Index arrays of the evaluation splits (test, and the validation protocol's when used)."""

    test_seen: np.ndarray
    test_unseen: np.ndarray
    val_seen: np.ndarray | None = None
    val_unseen: np.ndarray | None = None


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # tag → arrays of an evaluated epoch
    steps: int = 0
    seconds: float = 0.0


class TrainStep(torch.nn.Module):
    """Forward pass and loss terms as one module, so DistributedDataParallel sees every parameter a
    loss uses (some terms read weights directly, outside the model's forward)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        output = self.model(batch)
        return output, self.model.losses(output, batch)


class FiniteGuard:
    """Whether the loss stayed finite, checked in batches of steps (each check is one host sync).

    :meth:`observe` keeps each step's loss and terms on the device; :meth:`check` looks at all of them
    at once, agrees with the other ranks, and raises :class:`TrainingDiverged` naming the first step
    whose loss was not finite on any rank.

    >>> guard = FiniteGuard(epoch=0)
    >>> guard.observe(1, torch.tensor(0.5), {"ce": torch.tensor(0.5)})
    >>> guard.observe(2, torch.tensor(float("nan")), {"ce": torch.tensor(float("nan"))})
    >>> guard.check()
    Traceback (most recent call last):
    ...
    zslbench.core.errors.TrainingDiverged: loss became non-finite at epoch 1, step 2 (ce=nan); lower train.lr or check the data
    """

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.pending: list[tuple[int, torch.Tensor, dict[str, torch.Tensor]]] = []

    def observe(self, step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.pending.append((step, loss.detach(), {k: v.detach() for k, v in terms.items()}))

    def check(self, dist: distributed.Dist | None = None) -> None:
        pending, self.pending = self.pending, []
        finite = torch.isfinite(torch.stack([loss.float() for _, loss, _ in pending])).tolist() if pending else []
        first = next((i for i, ok in enumerate(finite) if not ok), None)
        never = 2**62
        mine = pending[first][0] if first is not None else never
        # every rank stops at the same check, naming the first step that went wrong anywhere
        step = distributed.min_over_ranks(mine) if dist is not None and dist.enabled else mine
        if step == never:
            return
        detail = ", ".join(f"{k}={float(v):.4g}" for k, v in pending[first][2].items()) if step == mine \
            else "on another process"
        raise TrainingDiverged(f"loss became non-finite at epoch {self.epoch + 1}, step {step} ({detail}); "
                               "lower train.lr or check the data")


class Trainer:
    """Trains ``model`` on ``train_indices`` and evaluates on ``eval_sets`` every ``eval_every`` epochs.

    Under ``torchrun`` every rank trains on its slice of each global batch (gradients averaged by
    DistributedDataParallel) and evaluates its slice of each evaluation set; rank 0 alone computes
    metrics, writes checkpoints and score files and calls ``on_epoch``. ``precision`` (``bf16`` |
    ``fp32``, chosen once per run: :func:`~zslbench.engine.device.choose_precision`) is the autocast
    of every forward pass; ``None`` takes ``train.amp`` as it resolves on ``device``.
    """

    def __init__(self, cfg: Config, data: RunData, model: torch.nn.Module, device: torch.device,
                 train_indices: np.ndarray, eval_sets: EvalSets, out_dir: Path,
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None, progress=None,
                 precision: str | None = None):
        self.cfg, self.data, self.model, self.device = cfg, data, model, device
        self.precision = precision or cfg.train.amp
        self.dist = distributed.current()
        self.train_batches = make_batches(cfg, data, train_indices, train=True, device=device,
                                          precision=self.precision)
        self.train_batches.shard = self.dist
        self.step_module: torch.nn.Module = TrainStep(model)
        self.eval_sets = eval_sets
        self.out_dir = out_dir
        self.on_epoch = on_epoch or (lambda epoch, metrics: None)
        self.progress = progress
        self.optimizer: torch.optim.Optimizer | None = None
        self.optimizer_phase = ""
        self._eval_batches: dict[str, Any] = {}
        self._masks: dict[str, np.ndarray | None] = {}
        head_params = [p for group in model.param_groups("warmup") for p in group["params"]]
        head_ids = {id(p) for p in head_params}
        self.head_params = head_params
        self.body_params = [p for p in model.parameters() if id(p) not in head_ids]
        self.class_attributes = torch.as_tensor(data.info.class_attributes, device=device)
        self.loop = training_loop(cfg)  # the clean loop, or the model's reference loop (train.quirks=reference)

    # ------------------------------------------------------------------ schedule
    def phase(self, epoch: int) -> str:
        return "warmup" if epoch < self.cfg.train.warmup_epochs else "full"

    def learning_rate(self, epoch: int) -> float:
        t = self.cfg.train
        if self.phase(epoch) == "warmup":
            return t.warmup_lr
        return t.lr * t.lr_decay ** (epoch // max(1, t.lr_decay_every))

    def _prepare_optimizer(self, epoch: int) -> torch.optim.Optimizer:
        t, phase = self.cfg.train, self.phase(epoch)
        recreate = self.loop.recreates(phase, new_phase=self.optimizer is None or phase != self.optimizer_phase)
        set_phase = getattr(self.model, "set_phase", None)
        if callable(set_phase):  # models whose losses change after warm-up (e.g. APN's compactness)
            set_phase(phase)
        if recreate:
            groups = self.model.param_groups(phase)
            if t.optimizer == "adam":
                self.optimizer = torch.optim.Adam(groups, lr=self.learning_rate(epoch), betas=tuple(t.betas),
                                                  weight_decay=t.weight_decay)
            else:
                self.optimizer = torch.optim.SGD(groups, lr=self.learning_rate(epoch), momentum=t.momentum,
                                                 weight_decay=t.weight_decay)
            self.optimizer_phase = phase
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch) * group.get("lr_scale", 1.0)
        # Clean warm-up trains the heads only: freeze the rest (saves their weight gradients). SVIP's reference
        # keeps them trainable and never zeroes their gradients, which then pour into the first full step.
        freeze = phase == "warmup" and not self.loop.warmup_gradient_buildup
        for p in self.body_params:
            p.requires_grad_(not freeze)
        if recreate and self.dist.enabled:  # DDP registers the parameters that need gradients: re-wrap per phase
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_module = DistributedDataParallel(TrainStep(self.model), device_ids=device_ids,
                                                       process_group=distributed.device_group(self.device),
                                                       static_graph=True)  # tolerates parameters a config leaves unused
        return self.optimizer

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        optimizer = self._prepare_optimizer(epoch)
        seed_everything(epoch_seed(cfg.train.seed, epoch))
        generator = getattr(self.train_batches, "generator", None)
        if generator is not None:
            generator.manual_seed(epoch_seed(cfg.train.seed, epoch))
        model.train()
        sums: dict[str, torch.Tensor] = {}  # loss terms × slice share, summed on the device: no per-step sync
        guard = FiniteGuard(epoch)
        steps, trained, images, start, shown = 0, 0, 0, time.perf_counter(), 0.0
        limit = cfg.train.max_steps_per_epoch or len(self.train_batches)
        task = self.progress.add_task(f"epoch {epoch + 1}/{cfg.train.epochs}", total=min(limit, len(self.train_batches))) \
            if self.progress is not None else None
        reference = self.loop.anomaly_detection  # anomaly detection syncs every step anyway: check each
        anomaly = torch.autograd.set_detect_anomaly(reference)
        with anomaly:
            for batch in self.train_batches:
                if steps >= limit:
                    break
                size, total = int(batch["label"].shape[0]), int(batch.pop("global_size", batch["label"].shape[0]))
                steps += 1
                if total < self.dist.world:  # too small to give every rank an image: every rank skips it alike
                    continue
                trained += 1
                share = size / total  # this slice's part of the global batch (known here: no collective)
                batch = to_device(batch, self.device)
                with autocast(self.device, self.precision):
                    _, terms = self.step_module(batch)
                loss = sum(terms.values())
                guard.observe(steps, loss, terms)
                if reference:  # before backward, whose anomaly detection would stop at the NaN with a traceback
                    guard.check(self.dist)
                if self.phase(epoch) == "warmup" and self.loop.warmup_gradient_buildup:
                    for p in self.head_params:  # only the heads are zeroed: backbone gradients accumulate
                        p.grad = None
                else:
                    optimizer.zero_grad(set_to_none=True)
                (loss * share * self.dist.world).backward()  # DDP averages over ranks: weight by the slice's share
                if cfg.train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                                   cfg.train.grad_clip)
                optimizer.step()
                fault_point("train_step")
                images += size
                for name, value in {**terms, "loss": loss}.items():
                    term = value.detach().double() * share
                    sums[name] = sums[name] + term if name in sums else term
                if steps % FINITE_CHECK_EVERY == 0:
                    guard.check(self.dist)
                if task is not None:
                    self.progress.update(task, advance=1)
                    if time.perf_counter() - shown > 0.5:  # reading the running loss waits for the device
                        shown = time.perf_counter()
                        rate = images / max(shown - start, 1e-9)
                        self.progress.update(task, description=(f"epoch {epoch + 1}/{cfg.train.epochs} loss "
                                                                f"{float(sums['loss']) / trained:.3f} · {rate:.0f} img/s"))
        guard.check(self.dist)  # before the epoch can be checkpointed
        if task is not None:
            self.progress.remove_task(task)
        elapsed = time.perf_counter() - start
        keys = sorted(sums)
        values = torch.stack([sums[k] for k in keys]).tolist() if keys else []
        totals = distributed.sum_over_ranks(values + [float(images)])
        metrics = {f"train/{k}": v / max(trained, 1) for k, v in zip(keys, totals)}
        images = int(totals[-1])
        metrics.update({"train/lr": self.learning_rate(epoch), "train/images_per_s": images / max(elapsed, 1e-9),
                        "train/epoch_seconds": elapsed})
        return metrics

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def collect(self, tag: str, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Class scores over ALL classes [N, C] (float32), labels, and kept super-patches of ``indices``
        (each rank scores a contiguous slice — possibly empty —; the slices are gathered in order)."""
        if tag not in self._eval_batches:
            mine = np.asarray(indices)[distributed.rank_slice(len(indices), self.dist)]
            self._eval_batches[tag] = make_batches(self.cfg, self.data, mine, train=False, device=self.device,
                                                   precision=self.precision)
        self.model.eval()
        scores, labels, kept = [], [], []
        for batch in self._eval_batches[tag]:
            batch.pop("global_size", None)
            labels.append(batch["label"])  # still in host memory
            batch = to_device(batch, self.device)
            with autocast(self.device, self.precision):
                output = self.model(batch)
                batch_scores = self.model.class_scores(output, self.class_attributes)
            scores.append(batch_scores)  # kept on the device: one transfer per split, not per batch
            if "kept" in output:
                kept.append(output["kept"])
            fault_point("eval_batch")
        if not scores:  # an empty slice (more ranks than images): nothing scored, nothing to concatenate
            num_classes = int(self.class_attributes.shape[0])
            return distributed.gather_arrays({"scores": np.zeros((0, num_classes), dtype=np.float32),
                                              "labels": np.zeros(0, dtype=np.int64)})
        result = {"scores": torch.cat(scores).float().cpu().numpy(), "labels": torch.cat(labels).numpy()}
        if kept:
            result["kept"] = torch.cat(kept).cpu().numpy().astype(bool)
        return distributed.gather_arrays(result)

    def evaluate(self) -> tuple[dict[str, float], Scores | None]:
        """Test metrics, and the scores they come from (None on every rank but the main one)."""
        info, ev = self.data.info, self.cfg.eval
        seen = self.collect("test_seen", self.eval_sets.test_seen)
        unseen = self.collect("test_unseen", self.eval_sets.test_unseen)
        if not self.dist.main:
            return {}, None
        scores = Scores(scores_seen=seen["scores"], labels_seen=seen["labels"], kept_seen=seen.get("kept"),
                        scores_unseen=unseen["scores"], labels_unseen=unseen["labels"], kept_unseen=unseen.get("kept"),
                        seen_classes=info.seen_classes, unseen_classes=info.unseen_classes)
        metrics = evaluate_scores(scores, gamma_policy=_test_policy(ev.gamma_policy), gamma=ev.gamma,
                                  space=ev.gamma_space)
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        metrics.update(self._selection_quality(unseen, seen))
        return metrics, scores

    def _selection_quality(self, *parts: dict[str, np.ndarray]) -> dict[str, float]:
        """Patch-selection precision/recall/IoU of the kept super-patches vs the creature masks (synth)."""
        if self.data.masks_dir is None or any("kept" not in p for p in parts):
            return {}
        from zslbench.data.masks import selection_scores

        patch = int(getattr(self.model, "patch_size", 0) or 0)
        if not patch:
            return {}
        kept, relevant = [], []
        for tag, part in zip(("test_unseen", "test_seen"), parts):
            if tag not in self._masks:
                self._masks[tag] = superpatch_masks(self.data, getattr(self.eval_sets, tag), patch)
            kept.append(part["kept"])
            relevant.append(self._masks[tag])
        scores = selection_scores(np.concatenate(kept), np.concatenate(relevant))
        return {f"patch_{k}": float(v) for k, v in scores.items() if isinstance(v, (int, float, np.floating))}

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: dict[str, Any] | None = None, extra_state: dict[str, Any] | None = None) -> FitResult:
        cfg = self.cfg
        history: list[dict[str, Any]] = []
        start_epoch, steps, seconds = 0, 0, 0.0
        if resume is not None:
            self.model.load_state_dict(resume["model"])
            history = list(resume["history"])
            start_epoch = int(resume["epoch"]) + 1
            steps, seconds = int(resume.get("steps", 0)), float(resume.get("seconds", 0.0))
            phase = self.phase(start_epoch)
            if resume.get("optimizer") is not None and phase == resume["optimizer_phase"] \
                    and not self.loop.recreates(phase, new_phase=False):
                self._prepare_optimizer(start_epoch)
                self.optimizer.load_state_dict(resume["optimizer"])
        kept_scores: dict[str, dict[str, np.ndarray]] = {}
        for epoch in range(start_epoch, cfg.train.epochs):
            tick = time.perf_counter()
            metrics = self.train_epoch(epoch)
            steps += int(len(self.train_batches) if not cfg.train.max_steps_per_epoch
                         else min(cfg.train.max_steps_per_epoch, len(self.train_batches)))
            last = epoch == cfg.train.epochs - 1
            if last or (epoch + 1) % cfg.train.eval_every == 0:
                eval_metrics, scores = self.evaluate()
                metrics.update(eval_metrics)
                if self.dist.main:
                    self._save_scores(scores, epoch)
            seconds += time.perf_counter() - tick
            history.append({"epoch": epoch, **metrics})
            if self.dist.main:
                self.checkpoint(epoch, history, steps, seconds, extra_state)
                self.on_epoch(epoch, metrics)
        return FitResult(history, kept_scores, steps, seconds)

    def checkpoint(self, epoch: int, history: list[dict[str, Any]], steps: int, seconds: float,
                   extra_state: dict[str, Any] | None) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "optimizer_phase": self.optimizer_phase,
            "epoch": epoch,
            "history": history,
            "steps": steps,
            "seconds": seconds,
            **(extra_state or {}),
        }
        save_checkpoint(self.out_dir / CHECKPOINT, state)

    def _save_scores(self, scores: Scores, epoch: int) -> None:
        scores_file.save(self.out_dir / "scores" / f"epoch{epoch:03d}.npz", scores)


def _test_policy(policy: str) -> str:
    # "val" is resolved by the runner (γ from the validation protocol, applied as "fixed").
    return "none" if policy == "val" else policy


def is_finite_history(history: list[dict[str, Any]]) -> bool:
    return all(math.isfinite(v) for row in history for v in row.values() if isinstance(v, float))


def resume_state(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / CHECKPOINT
    return load_checkpoint(path) if path.exists() else None
