"""Zero-inflated lognormal (ZILN) loss and predictions (Wang, Liu & Miao 2019, google/lifetime_value).

The network emits three logits per customer: the return logit, and mu and sigma of the lognormal value of a
returning customer. Value has a point mass at zero (no return) and a heavy tail: the loss is the classification
cross-entropy plus the lognormal negative log-likelihood of the positive values.

Numerical sanity: sigma is bounded to [SIGMA_MIN, SIGMA_MAX] and the log of the lognormal mean, mu + sigma^2 / 2,
is capped at `max_log_value` (the network stores a cap a little above the largest value seen in training), so a
short or unlucky training cannot give absurd expected values through exp(mu + sigma^2 / 2).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SIGMA_MIN = 1e-2
SIGMA_MAX = 3.0  # a lognormal with sigma 3 already has mean / median = exp(4.5) = 90
NO_CAP = 30.0  # exp(30) ~ 1e13: effectively uncapped


def split_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(return logit, mu, sigma) from the [batch, 3] output."""
    sigma = (F.softplus(logits[:, 2]) + SIGMA_MIN).clamp(max=SIGMA_MAX)
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


def expected_value(logits: torch.Tensor, max_log_value: float = NO_CAP) -> torch.Tensor:
    """E[value] = P(return) x E[lognormal] = sigmoid(l0) x exp(min(mu + sigma^2 / 2, max_log_value))."""
    p_logit, mu, sigma = split_logits(logits.float())
    return torch.sigmoid(p_logit) * torch.exp((mu + 0.5 * sigma**2).clamp(max=max_log_value))


def return_probability(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.float()[:, 0])


def quantile(logits: torch.Tensor, q: float, max_log_value: float = NO_CAP) -> torch.Tensor:
    """The q-quantile of the zero-inflated mixture: 0 while q is within the zero mass, else a lognormal quantile."""
    p_logit, mu, sigma = split_logits(logits.float())
    p = torch.sigmoid(p_logit)
    level = ((q - (1 - p)) / p.clamp_min(1e-12)).clamp(1e-6, 1 - 1e-6)
    z = math.sqrt(2) * torch.erfinv(2 * level - 1)
    return torch.where(q > 1 - p, torch.exp((mu + sigma * z).clamp(max=max_log_value)), torch.zeros_like(mu))


def head_init(y: np.ndarray) -> tuple[float, float, float]:
    """Output biases that start the head at the training population: (return logit, mu, raw sigma)."""
    y = np.asarray(y, dtype=float)
    share = float(np.clip((y > 0).mean(), 1e-3, 1 - 1e-3))
    log_pos = np.log(y[y > 0]) if (y > 0).any() else np.zeros(1)
    sigma = float(np.clip(log_pos.std(), 0.1, SIGMA_MAX - 0.1))
    raw_sigma = float(np.log(np.expm1(sigma - SIGMA_MIN)))  # inverse softplus
    return math.log(share / (1 - share)), float(log_pos.mean()), raw_sigma


def mixture_quantiles(p: np.ndarray, mu: np.ndarray, sigma: np.ndarray | float,
                      qs=(0.1, 0.5, 0.9)) -> list[np.ndarray]:
    """NumPy twin of `quantile` for models that give (return probability, lognormal mu, sigma) directly."""
    logits = torch.stack([
        torch.logit(torch.as_tensor(np.clip(p, 1e-6, 1 - 1e-6), dtype=torch.float64)),
        torch.as_tensor(mu, dtype=torch.float64),
        torch.as_tensor(np.log(np.expm1(np.maximum(np.broadcast_to(sigma, np.shape(p)) - SIGMA_MIN, 1e-6))),
                        dtype=torch.float64),
    ], dim=1)
    return [quantile(logits.double(), q).numpy().astype(float) for q in qs]
