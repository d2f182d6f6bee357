"""An rclpy ActionClient that can be used from one thread while an executor spins it in another.

rclpy 7.1.6 (the Jazzy wheel on PyPI) sends a goal, cancel or result request and only afterwards
records the request's sequence number. An executor spinning in another thread can take the response
in that gap; the client then drops it ("Ignoring unexpected goal response. There may be more than one
action server") and the future never completes (ros2/rclpy#1123, fixed upstream after 7.1.6). Every
client here that sends from a user thread (benchmarks, tests, scripts) uses this class instead.
"""

from __future__ import annotations

import threading
from typing import Any

from rclpy.action import ActionClient


class ThreadSafeActionClient(ActionClient):
    """ActionClient whose requests are recorded before any response to them can be handled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_lock = threading.Lock()

    def send_goal_async(self, *args: Any, **kwargs: Any):
        with self._request_lock:
            return super().send_goal_async(*args, **kwargs)

    def _cancel_goal_async(self, goal_handle):
        with self._request_lock:
            return super()._cancel_goal_async(goal_handle)

    def _get_result_async(self, goal_handle):
        with self._request_lock:
            return super()._get_result_async(goal_handle)

    async def execute(self, taken_data: Any) -> None:
        # A response can only have been taken after its request was sent, i.e. while a sender may still
        # hold the lock; waiting for it here means the request's bookkeeping is complete.
        with self._request_lock:
            pass
        await super().execute(taken_data)
