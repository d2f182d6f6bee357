"""A test probe's executor spun on a background thread, and stopped in the one safe order. Shutting an
executor down (or destroying its nodes) under a thread still inside ``spin`` let that thread wait on
destroyed handles: ``InvalidHandle: cannot use Destroyable because destruction was requested`` and an
AttributeError on the guard condition, both seen in CI. Here the thread leaves the wait set first.
Plain module (no pytest): benchmarks may import it too."""

from __future__ import annotations

import threading
from typing import Any


class Spinner:
    """``Spinner(executor).start()``; ``stop()`` before destroying the nodes and the context."""

    def __init__(self, executor: Any, wait_s: float = 0.05) -> None:
        self.executor = executor
        self.wait_s = wait_s  # how long one spin_once waits: the most a stop waits for the thread
        self._running = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def start(self) -> Spinner:
        self._running.set()
        self.thread.start()
        return self

    def _spin(self) -> None:
        while self._running.is_set():
            self.executor.spin_once(timeout_sec=self.wait_s)

    def stop(self, join_timeout_s: float = 10.0) -> None:
        """Out of the wait set, then the executor shuts down; safe to call twice or unstarted."""
        self._running.clear()
        if self.thread.is_alive():
            self.thread.join(join_timeout_s)
        self.executor.shutdown()
