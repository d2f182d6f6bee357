"""A fixed-rate loop on its own thread, scheduled on absolute monotonic deadlines so errors do not
accumulate; a tick that is late by more than a period re-synchronises instead of bursting."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def inference_threads(requested: int = 0) -> int:
    """``requested`` intra-op threads, or (0) all cores but one: the control path keeps a core. An engine
    left to its default takes every core, and its spinning threads starved the action stream through
    ROS (Sawyer on 2 cores, ONNX Runtime: control ticks at 45 Hz of 80, observations 52 ms old)."""
    return requested or max(1, (os.cpu_count() or 2) - 1)


def configure_threads(gil_switch_interval: float, threads: int) -> None:
    """Leave a core for the control path and make the GIL change hands often enough for it."""
    if gil_switch_interval > 0:
        sys.setswitchinterval(gil_switch_interval)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(inference_threads(threads))


def set_realtime(priority: int) -> bool:
    """Give the calling thread SCHED_FIFO ``priority`` (Linux, needs CAP_SYS_NICE or an rtprio limit).
    Returns whether it was granted; the runtime works without it, with more jitter under load."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (PermissionError, OSError) as exc:
        log.warning("real-time priority %d refused (%s); running with normal scheduling", priority, exc)
        return False


def set_nice(nice: int) -> bool:
    """Set the calling thread's nice value (-20 favours it most; below 0 needs CAP_SYS_NICE). Unlike
    SCHED_FIFO, a busy thread at nice -20 is not subject to real-time throttling, which would stop
    every real-time thread on its CPU (the control thread included) for 50 ms each second."""
    if nice == 0 or not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (PermissionError, OSError) as exc:
        log.warning("nice %d refused (%s); running at the default priority", nice, exc)
        return False


class RateLoop:
    def __init__(
        self, period: float, fn: Callable[[], object], name: str = "gen0-rate", realtime_priority: int = 0
    ) -> None:
        self.period = period
        self.fn = fn
        self.realtime_priority = realtime_priority
        self.realtime = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        self.realtime = set_realtime(self.realtime_priority)
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                self.fn()
            except BaseException as exc:  # surfaced through status, never silently lost
                self.error = exc
                raise
            deadline += self.period
            now = time.monotonic()
            if now > deadline + self.period:
                deadline = now  # far behind: skip, do not burst
            elif deadline > now:
                time.sleep(deadline - now)
