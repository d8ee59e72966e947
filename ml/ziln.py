"""Zero-inflated lognormal (ZILN) loss and predictions (Wang, Liu & Miao 2019, google/lifetime_value).

The network emits three logits per customer: the return logit, and mu and sigma of the lognormal value of a
returning customer. Value has a point mass at zero (no return) and a heavy tail: the loss is the classification
cross-entropy plus the lognormal negative log-likelihood of the positive values.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIGMA_MIN = 1e-3


def split_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(return logit, mu, sigma) from the [batch, 3] output."""
    sigma = F.softplus(logits[:, 2]) + SIGMA_MIN
    return logits[:, 0], logits[:, 1], sigma


def ziln_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean ZILN loss of logits [batch, 3] against values y [batch] (y >= 0)."""
    logits, y = logits.float(), y.float()
    p_logit, mu, sigma = split_logits(logits)
    positive = (y > 0).float()
    cls = F.binary_cross_entropy_with_logits(p_logit, positive, reduction="none")
    safe_y = torch.where(y > 0, y, torch.ones_like(y))
    log_y = torch.log(safe_y)
    nll = log_y + torch.log(sigma) + 0.5 * math.log(2 * math.pi) + 0.5 * ((log_y - mu) / sigma) ** 2
    return (cls + positive * nll).mean()


def expected_value(logits: torch.Tensor) -> torch.Tensor:
    """E[value] = P(return) x E[lognormal] = sigmoid(l0) x exp(mu + sigma^2 / 2)."""
    p_logit, mu, sigma = split_logits(logits.float())
    return torch.sigmoid(p_logit) * torch.exp(mu + 0.5 * sigma**2)


def return_probability(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.float()[:, 0])


def quantile(logits: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile of the zero-inflated mixture: 0 while q is within the zero mass, else a lognormal quantile."""
    p_logit, mu, sigma = split_logits(logits.float())
    p = torch.sigmoid(p_logit)
    level = ((q - (1 - p)) / p.clamp_min(1e-12)).clamp(1e-6, 1 - 1e-6)
    z = math.sqrt(2) * torch.erfinv(2 * level - 1)
    return torch.where(q > 1 - p, torch.exp(mu + sigma * z), torch.zeros_like(mu))
