"""
Keeping the cores awake during a latency run (``run.py``'s default for the
latency workloads; ``--no-keep-awake`` turns it off).

On a virtual machine an idle vCPU is taken off its host core; waking it
(an interrupt through the hypervisor) takes time the server then seems to
spend.  On this machine the tails of the latency workloads were longer on
a quiet machine than on a busy one for that reason.  A spinner at
``SCHED_IDLE`` on each core keeps the vCPUs running without taking any time
from the processes measured: anything of another class, the ordinary
scheduler's included, preempts it at once, and the benchmark's processes
run at ``SCHED_FIFO``.  As the kernel's ``idle=poll``, for one run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the kernel kills a spinner whose benchmark died first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


#: The spinner: pinned to one core, at the lowest class there is.
SPIN = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "while True:\n"
    "    pass\n"
)


def allowed() -> bool:
    """Whether this platform has ``SCHED_IDLE`` and CPU affinity."""
    return hasattr(os, "SCHED_IDLE") and hasattr(os, "sched_setaffinity")


@contextlib.contextmanager
def cores_kept_awake(cpus: Iterable[int]) -> Iterator[None]:
    """One spinner per core in ``cpus`` for the duration of the block."""
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", SPIN, str(cpu)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        for cpu in sorted(set(cpus))
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
