"""A torchrun entry for tests/test_distributed.py: the platform's rank (ml.models.distributed.main) whose rank 1
fails at its third batch, while rank 0 goes on into the gradients' all-reduce and waits there for it."""
from __future__ import annotations

import os

from ml.models import distributed, ziln

_calls = 0
_loss = ziln.ziln_loss


def _loss_failing_on_rank_1(logits, y):
    global _calls
    _calls += 1
    if os.environ.get("RANK") == "1" and _calls == 3:
        raise FloatingPointError("the loss went NaN on rank 1 (injected)")
    return _loss(logits, y)


if __name__ == "__main__":
    ziln.ziln_loss = _loss_failing_on_rank_1  # training.train_here reads it from the module at each training
    distributed.main()
