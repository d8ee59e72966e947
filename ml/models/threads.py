"""How many CPU threads torch uses for one job."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch


def cores() -> int:
    """The CPUs this process may run on (its affinity, which a container or taskset narrows; else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def cpu_threads(wanted: int | None = None):
    """Torch's intra-op threads for one training or scoring. Measured on a 2-core machine with other work running:
    two threads ran the GRU ten times slower than one (they wait for each other), so a busy machine gets one."""
    before = torch.get_num_threads()
    available = cores()
    n = wanted or (1 if os.getloadavg()[0] >= available else available)
    torch.set_num_threads(max(1, n))
    try:
        yield n
    finally:
        torch.set_num_threads(before)
