"""What the runtime knows about itself: health flags the supervisor acts on and meters the status reports.

The worker and the control path write these as they find things out; :meth:`Runtime._supervise` only
reads them. Every write is one assignment, so the threads share them without a lock."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Health:
    """Reasons not to act that are not about the inputs, each set and cleared in one place below."""

    worker_error: str = ""  # the inference worker died: why (a fault until the runtime restarts)
    chunk_error: str = ""  # the last inference gave no usable chunk: why (cleared by the next good chunk)
    uncertain: bool = False  # the last chunk's spread was above uncertainty_threshold
    restart_reason: str = ""  # the stream restarted (clock jump, re-anchor); cleared by a chunk computed after it
    busy_since: float | None = None  # wall time (monotonic) the running inference started; None when idle

    def watch(self, worker: Callable[[], None]) -> Callable[[], None]:
        """``worker`` for a thread: if it dies, ``worker_error`` says why (a fault, never a silent stop)."""

        def run() -> None:
            try:
                worker()
            except Exception as exc:
                log.exception("inference worker died")
                self.worker_error = f"inference worker died: {type(exc).__name__}: {exc}"

        return run

    @contextmanager
    def inferring(self) -> Iterator[None]:
        """Mark an inference as running, so a hung one is seen (see :meth:`hung_for`)."""
        self.busy_since = time.monotonic()
        try:
            yield
        finally:
            self.busy_since = None

    def hung_for(self) -> float:
        """Seconds the running inference has taken so far (0 when none runs)."""
        busy = self.busy_since
        return 0.0 if busy is None else time.monotonic() - busy

    def chunk(self, uncertain: bool) -> None:
        """A valid chunk arrived; a confident one also ends a restart."""
        self.chunk_error, self.uncertain = "", uncertain
        if not uncertain:
            self.restart_reason = ""


@dataclass
class Meters:
    """Measurements for the status and for sizing the committed prefix."""

    uncertainty: float = 0.0  # of the last chunk
    novelty: float = math.nan  # image_novelty of the last chunk's observation (NaN: not measured)
    inference_latency: float = 0.0  # s wall time of the last inference
    observation_age: float = 0.0  # s; age of the last inference's observation when it started
    latency_estimate: float = 0.0  # s of runtime clock from an observation to its chunk, EMA
    period_estimate: float = 0.0  # s between ticks, EMA
    chunks: int = 0  # chunks produced (also the next chunk's seq - 1)
    last_tick: float | None = None

    def tick(self, now: float) -> None:
        # Average periods, not rates: a late tick followed by a quick catch-up must not read as a fast clock.
        if self.last_tick is not None and now > self.last_tick:
            period = now - self.last_tick
            self.period_estimate = period if self.period_estimate == 0 else 0.9 * self.period_estimate + 0.1 * period
        self.last_tick = now

    def inference(self, latency: float, wall_latency: float, observation_age: float, alpha: float) -> None:
        """One inference done: ``latency`` (runtime clock, observation to chunk) feeds the EMA with weight ``alpha``."""
        estimate = self.latency_estimate
        self.latency_estimate = latency if estimate == 0 else (1 - alpha) * estimate + alpha * latency
        self.inference_latency, self.observation_age = wall_latency, observation_age

    @property
    def control_rate(self) -> float:
        return 1.0 / self.period_estimate if self.period_estimate > 0 else 0.0
