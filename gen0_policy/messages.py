"""Message fields -> numpy without ROS: the rules that rclpy messages (nodes) and rosbags messages
(bags) share, so both decode stamps and images the same way, with the same checks. Duck-typed: any
object with ``sec``/``nanosec``, or ``encoding``/``height``/``width``/``step``/``data``, will do."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gen0_policy.errors import ObservationError

NANOSECONDS_PER_SECOND = 1_000_000_000
SECONDS_PER_NANOSECOND = 1e-9  # bag log times (int ns) -> s; kept a product so built episodes stay bit-identical
# encoding -> (channels, channel order turning the raw pixels into RGB; None for grey)
IMAGE_ENCODINGS: dict[str, tuple[int, tuple[int, ...] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces Time or Duration (``sec``, ``nanosec``) -> float seconds."""
    return stamp.sec + stamp.nanosec / NANOSECONDS_PER_SECOND


def header_seconds(stamp: Any) -> float | None:
    """A header stamp in s, or None for a zero stamp: by ROS convention "unstamped", to be read as the
    time of arrival (never as the epoch, which would make the data decades stale)."""
    return stamp_seconds(stamp) or None


def split_seconds(seconds: float) -> tuple[int, int]:
    """Float seconds -> (sec, nanosec) with 0 <= nanosec < 1e9 (sec < 0 for negative durations)."""
    if not math.isfinite(seconds):
        raise ValueError(f"time must be finite, got {seconds}")
    # Split before scaling: seconds * 1e9 would lose ns precision for wall-clock times (~1.7e9 s).
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * NANOSECONDS_PER_SECOND)
    if nanosec >= NANOSECONDS_PER_SECOND:
        sec, nanosec = sec + 1, nanosec - NANOSECONDS_PER_SECOND
    return int(sec), int(nanosec)


def split_nanoseconds(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec), exactly."""
    return ns // NANOSECONDS_PER_SECOND, ns % NANOSECONDS_PER_SECOND


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image fields -> (H, W, 3) uint8 RGB, respecting ``step`` (row padding).

    Raises ObservationError for an unsupported encoding, a non-positive size, a step shorter than a
    row, or too few bytes, saying which."""
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise ObservationError(
            f"image encoding {encoding!r} is not supported; supported encodings are {sorted(IMAGE_ENCODINGS)}"
        )
    channels, order = IMAGE_ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ObservationError(f"{encoding} image has size {w}x{h}; width and height must be positive")
    if step < w * channels:
        raise ObservationError(
            f"{encoding} image of width {w} needs step >= {w * channels} bytes per row, got step {step}"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)  # bytes, array.array (rclpy) or ndarray (rosbags)
    if data.size < step * h:
        raise ObservationError(
            f"{encoding} image {w}x{h} with step {step} needs {step * h} bytes of data, got {data.size}"
        )
    pixels = data[: step * h].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if order is None:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(order)])
