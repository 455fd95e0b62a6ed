"""Which training images form each batch of an epoch (``train.sampling``), for every batch source.

* ``shuffle`` — a permutation of the training images (or their order, when the model's reference loop does
  not shuffle) cut into batches of ``batch_size``; the last, smaller batch is dropped with ``drop_last``;
* ``balanced`` — each batch draws ``ways`` distinct classes (``train.ways``; 0 = min(classes, batch_size))
  and ``max(batch_size // ways, 1)`` images of each, without replacement inside a class (with replacement only
  for a class that has fewer images): TransZero's class-balanced batches, APN's ZSL episodes (8 × 3);
* ``random`` — each batch is ``batch_size`` distinct images drawn afresh from all of them, so batches of one
  epoch may share images and some images wait an epoch (TransZero's CUB loop).

``balanced`` and ``random`` epochs have ``train.batches_per_epoch`` batches (0 = images // batch_size, at least
one). Every draw comes from the batch source's ``generator``, which the trainer reseeds each epoch, so an
epoch's batches are a function of (seed, epoch) and a resumed run repeats them.

>>> import torch
>>> labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
>>> plan = Sampling("balanced", ways=2).batches(labels, 4, torch.Generator().manual_seed(0), drop_last=False)
>>> len(plan), [sorted(set(labels[b].tolist())).__len__() for b in plan], [len(b) for b in plan]
(2, [2, 2], [4, 4])
>>> [b.tolist() for b in Sampling("shuffle", shuffle=False).batches(labels, 4, torch.Generator(), drop_last=True)]
[[0, 1, 2, 3], [4, 5, 6, 7]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zslbench.catalogue import CLEAN_LOOP, ReferenceLoop, model_entry


def training_loop(cfg: Any) -> ReferenceLoop:
    """The training loop ``cfg`` asks for: its model's reference loop under ``train.quirks=reference``, else the
    clean one (:class:`~zslbench.catalogue.ReferenceLoop`).

    >>> import zslbench
    >>> from zslbench.config import resolve
    >>> training_loop(resolve("svip", overrides=["train.quirks=reference"])).shuffle, training_loop(resolve("svip")).shuffle
    (False, True)
    """
    return model_entry(cfg.model.name).reference_loop if cfg.train.quirks == "reference" else CLEAN_LOOP


@dataclass(frozen=True)
class Sampling:
    """How an epoch's batches are drawn (module docstring); ``shuffle`` only matters for ``mode="shuffle"``."""

    mode: str = "shuffle"
    ways: int = 0
    batches_per_epoch: int = 0
    shuffle: bool = True

    @classmethod
    def for_training(cls, train_cfg: Any, shuffle: bool) -> "Sampling":
        """The training batches of ``train_cfg`` (the ``train`` config section)."""
        return cls(train_cfg.sampling, int(train_cfg.ways), int(train_cfg.batches_per_epoch), shuffle)

    def count(self, n: int, batch_size: int, drop_last: bool) -> int:
        """Batches per epoch over ``n`` images."""
        if self.mode == "shuffle":
            return n // batch_size if drop_last else -(-n // batch_size)
        if n == 0:
            return 0
        return self.batches_per_epoch or max(1, n // batch_size)

    def batches(self, labels: np.ndarray, batch_size: int, generator: torch.Generator | None,
                drop_last: bool) -> list[np.ndarray]:
        """The positions (into ``labels``) of each batch of one epoch, drawn from ``generator`` (None: torch's
        global generator)."""
        n = len(labels)
        count = self.count(n, batch_size, drop_last)
        if self.mode == "balanced":
            return self._balanced(np.asarray(labels), batch_size, count, generator)
        if self.mode == "random":
            return [torch.randperm(n, generator=generator)[:batch_size].numpy() for _ in range(count)]
        order = torch.randperm(n, generator=generator).numpy() if self.shuffle else np.arange(n)
        return [order[b * batch_size:(b + 1) * batch_size] for b in range(count)]

    def _balanced(self, labels: np.ndarray, batch_size: int, count: int,
                  generator: torch.Generator | None) -> list[np.ndarray]:
        members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        ways = min(self.ways or batch_size, len(members))
        shots = max(batch_size // ways, 1)
        plan = []
        for _ in range(count):
            chosen = torch.randperm(len(members), generator=generator)[:ways].tolist()
            plan.append(np.concatenate([_draw(members[c], shots, generator) for c in chosen]))
        return plan


def _draw(members: np.ndarray, shots: int, generator: torch.Generator | None) -> np.ndarray:
    """``shots`` of a class's images: distinct when it has that many, else drawn with replacement."""
    if len(members) >= shots:
        return members[torch.randperm(len(members), generator=generator)[:shots].numpy()]
    return members[torch.randint(len(members), (shots,), generator=generator).numpy()]
