"""Asking until answered, before a request that must not be lost. FastDDS drops the answer to a request
sent before the server discovered the client's reply reader, however long wait_for_service waited
(ros2/rmw_fastrtps#842). A harmless request answered once means the server knows the client, and the
clients its node created before it: a participant announces its readers in creation order over a
reliable channel. Plain module (no pytest): the fuzz benchmark imports it too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def first_answer(
    send: Callable[[], Any],
    what: str,
    attempts: int = 10,
    attempt_timeout: float = 2.0,
    wait: Callable[[Any, float], None] | None = None,
) -> Any:
    """The result of the first of up to ``attempts`` futures from ``send()`` answered within
    ``attempt_timeout`` s. ``wait(future, timeout)`` spins a node nobody else spins; by default the
    future is polled (the node spins on another thread)."""
    for _ in range(attempts):
        future = send()
        if wait is not None:
            wait(future, attempt_timeout)
        deadline = time.monotonic() + attempt_timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if future.done():
            return future.result()
    raise AssertionError(f"no answer from {what} in {attempts} requests")


def warm_up(client, request, service_timeout: float = 20.0, **kw: Any) -> Any:
    """Call ``client`` with a harmless ``request`` until one answer arrives; that answer."""
    assert client.wait_for_service(timeout_sec=service_timeout), f"no service {client.srv_name}"
    return first_answer(lambda: client.call_async(request), client.srv_name, **kw)
