"""Hot swap: a new policy from its load to its first chunk, while the running one keeps acting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from gen0_policy.runtime.policy import ChunkPolicy


class HotSwap:
    """The whole lifecycle of one swap, in order: :meth:`load` (on a background thread) or :meth:`offer`,
    then :meth:`take` at the worker's next inference, then :meth:`first_chunk` once the new policy's first
    chunk is accepted. Until then the executing chunk continues, so the robot never pauses for a swap.

    ``loading`` names the policy on its way ("" when none); ``error`` says why the last load failed (the
    old policy keeps running)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: ChunkPolicy | None = None  # handed to the worker at its next inference
        self._target: ChunkPolicy | None = None  # the policy whose first chunk ends the swap
        self.loading = ""
        self.error = ""

    def offer(self, policy: ChunkPolicy) -> None:
        """Swap to ``policy`` at the next inference."""
        with self._lock:
            self._next = self._target = policy
            self.loading = str(getattr(policy, "checkpoint_id", "new policy"))

    def load(self, loader: Callable[[], ChunkPolicy], name: str = "checkpoint") -> Future:
        """Run ``loader`` on a background thread, then :meth:`offer` its policy. The future gives the
        policy or the load error; a failed load leaves the old policy running."""
        future: Future = Future()
        self.loading, self.error = name, ""

        def load() -> None:
            try:
                policy = loader()
            except Exception as exc:
                self.loading, self.error = "", f"loading {name} failed: {exc}"
                future.set_exception(exc)
                return
            self.offer(policy)
            future.set_result(policy)

        threading.Thread(target=load, name="gen0-loader", daemon=True).start()
        return future

    def take(self, current: ChunkPolicy) -> ChunkPolicy:
        """The policy the next inference runs: the offered one if there is one, else ``current``."""
        with self._lock:
            policy, self._next = self._next or current, None
        return policy

    def first_chunk(self, policy: ChunkPolicy) -> None:
        """``policy`` produced an accepted chunk: if it is the one swapped in, the swap is complete."""
        if policy is self._target:
            self.loading, self._target = "", None
