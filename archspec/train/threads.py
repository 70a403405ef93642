"""How many torch threads `train` and `bench` use when `--threads` is not given (torch-free).

torch's default is one intra-op thread per core. On a small or busy machine that oversubscribes
the cores: LeNet-5 trained at 536 images/s with the default and 4,086 with `--threads 1` on a
2-core box that other jobs were using (issue 17). The rule:

- `--threads N` (N > 0) is taken as it is;
- with at most 2 usable cores: 1 thread;
- otherwise the cores that are idle, the usable ones less the 1-minute load average (the work
  of other processes, measured before this one starts computing), shared out between the
  processes of a `--nproc` run, at least 1 each.
"""
from __future__ import annotations

import math
import os

SMALL_MACHINE_CORES = 2


def pick_threads(requested: int, cores: int | None, load: float | None, processes: int = 1) -> int:
    """The intra-op threads per process (the rule above): a pure function of the request, the
    usable cores, the load average (None where unknown: taken as idle) and the processes."""
    if requested > 0:
        return requested
    if not cores or cores <= SMALL_MACHINE_CORES:
        return 1
    idle = cores - max(0.0, load or 0.0)
    return max(1, math.floor(idle) // max(1, processes))


def usable_cores() -> int | None:
    """The cores this process may run on (its CPU affinity, which containers narrow), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def threads_for(requested: int, processes: int = 1) -> int:
    """`pick_threads` on this machine, now."""
    return pick_threads(requested, usable_cores(), load_average(), processes)
