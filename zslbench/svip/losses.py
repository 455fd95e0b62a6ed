"""SVIP's loss terms (SVIP.md §6), unweighted; the model applies the weights.

* :func:`kl_consistency` — the reference form: KL(P_ctx ‖ P_src), P = softmax(z / T), × T²,
  averaged over all B · C elements (``kl_div(reduction="mean")`` semantics), no stop-gradient.
  Its effective weight per class-summed KL is T² / C_s;
* :func:`jsd_consistency` — the true Jensen–Shannon divergence ½KL(P‖M) + ½KL(Q‖M), M = (P + Q)/2,
  summed over classes, averaged over the batch, × T² like the KL form (the usual temperature
  compensation, so both forms have comparable gradient scales);
* :func:`patch_bce` — BCE of PatchCls logits against the pseudo-labels, mean over B · P;
* :func:`attribute_group_l21` — mean over attribute groups of the batch mean of ‖a[g]‖₂.

Example:
    >>> import torch
    >>> z = torch.tensor([[1.0, 2.0, 3.0]])
    >>> abs(float(kl_consistency(z, z, 20.0))) < 1e-6, abs(float(jsd_consistency(z, z, 20.0))) < 1e-6
    (True, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_consistency(logits_ctx: Tensor, logits_src: Tensor, temperature: float) -> Tensor:
    """KL(P_ctx ‖ P_src) · T², element mean over [B, C] (the reference's ``KLDivLoss()`` reduction)."""
    log_src = F.log_softmax(logits_src.float() / temperature, dim=1)
    log_target = F.log_softmax(logits_ctx.float() / temperature, dim=1)
    return F.kl_div(log_src, log_target, reduction="none", log_target=True).mean() * temperature**2


def jsd_consistency(logits_ctx: Tensor, logits_src: Tensor, temperature: float) -> Tensor:
    """Jensen–Shannon divergence of the two tempered distributions, batch mean, · T²."""
    log_p = F.log_softmax(logits_ctx.float() / temperature, dim=1)
    log_q = F.log_softmax(logits_src.float() / temperature, dim=1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - torch.log(torch.tensor(2.0, device=log_p.device))
    kl_p = (log_p.exp() * (log_p - log_m)).sum(dim=1)
    kl_q = (log_q.exp() * (log_q - log_m)).sum(dim=1)
    return 0.5 * (kl_p + kl_q).mean() * temperature**2


def patch_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """BCE(sigmoid(logits), targets), mean over all entries (autocast-safe logits form)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def attribute_group_l21(attributes: Tensor, membership: Tensor) -> Tensor:
    """Mean over groups of the batch-mean L2 norm of each group's attribute predictions.

    ``membership`` [n_groups, A] is 0/1. (A zero group norm gets gradient 0, as ``torch.norm``'s.)
    """
    with torch.autocast(device_type=attributes.device.type, enabled=False):
        squared = attributes.float().pow(2) @ membership.float().t()  # [B, n_groups]
    return squared.clamp_min(1e-24).sqrt().mean(dim=0).mean()


def group_membership(groups: list[list[int]], attributes: int) -> Tensor:
    """0/1 matrix ``[n_groups, A]`` of the non-empty attribute groups.

    >>> group_membership([[0, 2], [], [1]], 3).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    groups = [g for g in groups if len(g)]
    membership = torch.zeros(len(groups), attributes)
    for row, members in enumerate(groups):
        membership[row, torch.as_tensor(members, dtype=torch.long)] = 1.0
    return membership
