"""Run a post-training job in a child process and follow it, so the caller (the ROS node) stays
responsive and the running policy is never touched: the child owns all the memory and CPU, reports
through JSON lines on its stdout, and can be stopped (SIGINT, then SIGKILL after a grace period)
or die (out of memory) without taking the caller with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen0_policy.train.posttrain import PostTrainJob

STATUSES = ("succeeded", "canceled", "failed")


@dataclass
class PostTrainOutcome:
    status: str  # one of STATUSES
    message: str
    checkpoint_path: str = ""  # the new checkpoint; the last good one when canceled; "" if none
    validation_error_before: float = float("nan")
    validation_error_after: float = float("nan")
    steps_completed: int = 0
    duration: float = 0.0
    returncode: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def last_good_checkpoint(out_dir: str | Path) -> str:
    """The checkpoint ``<out_dir>/latest`` names: written completely before ``latest`` moves to it."""
    latest = Path(out_dir) / "latest"
    if not latest.is_file():
        return ""
    ckpt = Path(out_dir) / latest.read_text().strip()
    return str(ckpt) if ckpt.is_dir() else ""


class PostTrainProcess:
    """``start()`` a job as ``python -m gen0_policy.train.posttrain``; events arrive on a reader
    thread and go to ``on_event``; ``cancel()`` stops it gracefully (and kills it if it must);
    ``wait()`` returns the :class:`PostTrainOutcome`."""

    def __init__(
        self,
        job: PostTrainJob,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.job = job
        self.on_event = on_event or (lambda event: None)
        self.python = python
        self.env = env
        self.events: list[dict[str, Any]] = []
        self.proc: subprocess.Popen | None = None
        self.canceled = False
        self.killed = False
        self._reader: threading.Thread | None = None
        self._killer: threading.Timer | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.job.out_dir) / "posttrain.log"

    def start(self) -> None:
        out = Path(self.job.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        job_file = out / "job.json"
        job_file.write_text(json.dumps(self.job.to_dict(), indent=2))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "gen0_policy.train.posttrain", str(job_file), "--watch-stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,  # our own process group: a Ctrl-C to the caller is the caller's to pass on
            )
        self._reader = threading.Thread(target=self._read, name="posttrain-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self.events.append(event)
                self.on_event(event)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cancel(self, grace_s: float = 30.0) -> None:
        """Ask the child to stop after its current step and save; SIGKILL it after ``grace_s``."""
        if not self.running or self.canceled:
            return
        self.canceled = True
        self._signal(signal.SIGINT)
        self._killer = threading.Timer(grace_s, self.kill)
        self._killer.daemon = True
        self._killer.start()

    def kill(self) -> None:
        if self.running:
            self.killed = True
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float | None = None) -> PostTrainOutcome:
        assert self.proc is not None, "start() first"
        rc = self.proc.wait(timeout)
        if self._killer is not None:
            self._killer.cancel()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdin:
            self.proc.stdin.close()
        return self._outcome(rc)

    def _outcome(self, rc: int) -> PostTrainOutcome:
        events = list(self.events)
        result = next((e for e in reversed(events) if e.get("event") == "result"), None)
        error = next((e for e in reversed(events) if e.get("event") == "error"), None)
        steps = max((int(e["step"]) for e in events if e.get("event") == "step"), default=0)
        if result is not None and rc == 0:
            return PostTrainOutcome(
                status=result["status"],
                message=result["message"],
                checkpoint_path=result["checkpoint_path"],
                validation_error_before=float(result["validation_error_before"]),
                validation_error_after=float(result["validation_error_after"]),
                steps_completed=int(result["steps_completed"]),
                duration=float(result["duration"]),
                returncode=rc,
                events=events,
            )
        before = next((float(e["validation_error"]) for e in events if e.get("event") == "validation"), float("nan"))
        outcome = PostTrainOutcome("failed", "", last_good_checkpoint(self.job.out_dir), before, steps_completed=steps)
        outcome.returncode, outcome.events = rc, events
        kept = f"; last good checkpoint {outcome.checkpoint_path}" if outcome.checkpoint_path else ""
        if self.canceled:
            outcome.status = "canceled"
            how = "killed after the grace period" if self.killed else "stopped"
            outcome.message = f"canceled at step {steps} ({how}){kept or '; no checkpoint was written'}"
        elif error is not None:
            outcome.message = f"{error.get('kind')}: {error.get('reason')}{kept}"
        elif rc < 0:
            name = signal.Signals(-rc).name
            hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
            outcome.message = f"the training process was killed by {name}{hint}{kept}; log: {self.log_path}"
        else:
            outcome.message = f"the training process exited with code {rc}: {self._log_tail()}{kept}"
        return outcome

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return f"see {self.log_path}"
