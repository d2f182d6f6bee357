"""Training progress as JSON lines, one event each (step, validation, checkpoint, phase, result):
what `gen0 train` and `gen0 posttrain` both leave in their run folder as ``progress.jsonl``, and what
the post-training job streams to its parent on stdout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

Emit = Callable[[dict[str, Any]], None]


def json_lines(stream: TextIO | None, log: Path | None) -> Emit:
    """An emitter writing each event, stamped with the wall time, to ``stream`` and appending it to ``log``."""
    lock = threading.Lock()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    log_file = log.open("a") if log else None

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps({**event, "time": time.time()}, default=float)
        with lock:
            for out in (stream, log_file):
                if out is not None:
                    out.write(line + "\n")
                    out.flush()

    return emit
