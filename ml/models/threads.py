"""How many CPU threads torch uses for one job."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(wanted: int | None = None):
    """Torch's intra-op threads for one training or scoring. Measured on a 2-core machine with other work running:
    two threads ran the GRU ten times slower than one (they wait for each other), so a busy machine gets one."""
    before = torch.get_num_threads()
    cores = os.cpu_count() or 1
    n = wanted or (1 if os.getloadavg()[0] >= cores else cores)
    torch.set_num_threads(max(1, n))
    try:
        yield n
    finally:
        torch.set_num_threads(before)
