"""A torchrun entry for tests/test_distributed.py: the platform's rank (ml.models.distributed.main), except that
on the first launch rank 1 is killed before it starts (no error of its own: what a launch hiccup looks like)."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ml.models import distributed

if __name__ == "__main__":
    marker = Path(sys.argv[1]) / "killed-once"
    if os.environ.get("RANK") == "1" and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    distributed.main()
