"""Message fields -> numpy without ROS (the rules rclpy nodes and rosbags readers share): stamps in
named units round-trip, and the one image decoder handles padding, channel order and bad sizes for
any message-shaped object."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gen0_policy.errors import ObservationError
from gen0_policy.messages import (
    IMAGE_ENCODINGS,
    NANOSECONDS_PER_SECOND,
    SECONDS_PER_NANOSECOND,
    header_seconds,
    image_to_rgb,
    split_nanoseconds,
    split_seconds,
    stamp_seconds,
)


def test_units_say_what_they_are() -> None:
    assert NANOSECONDS_PER_SECOND == 10**9 and NANOSECONDS_PER_SECOND * SECONDS_PER_NANOSECOND == 1.0


@given(st.integers(-(10**18), 10**18))
def test_nanoseconds_split_exactly(ns: int) -> None:
    sec, nanosec = split_nanoseconds(ns)
    assert 0 <= nanosec < NANOSECONDS_PER_SECOND and sec * NANOSECONDS_PER_SECOND + nanosec == ns


@given(st.floats(-1e9, 2e9, allow_nan=False))
def test_seconds_split_round_trips_to_a_nanosecond(seconds: float) -> None:
    sec, nanosec = split_seconds(seconds)
    assert 0 <= nanosec < NANOSECONDS_PER_SECOND
    back = stamp_seconds(SimpleNamespace(sec=sec, nanosec=nanosec))
    assert abs(back - seconds) <= 1e-9 + abs(seconds) * 1e-15  # ns resolution, float rounding at ~1e9 s


def test_a_zero_header_stamp_means_unstamped_not_the_epoch() -> None:
    assert header_seconds(SimpleNamespace(sec=0, nanosec=0)) is None
    assert header_seconds(SimpleNamespace(sec=0, nanosec=1)) == 1e-9
    assert header_seconds(SimpleNamespace(sec=12, nanosec=500_000_000)) == 12.5


def test_non_finite_seconds_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        split_seconds(float("nan"))


def message(pixels: np.ndarray, encoding: str, pad: int = 0, container=bytes) -> SimpleNamespace:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.zeros((h, rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    data = container(padded.tobytes()) if container is not np.frombuffer else np.frombuffer(padded.tobytes(), np.uint8)
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=rows.shape[1] + pad, data=data)


@pytest.mark.parametrize("container", [bytes, lambda b: array.array("B", b), np.frombuffer])
@pytest.mark.parametrize("encoding", sorted(IMAGE_ENCODINGS))
def test_every_encoding_decodes_to_rgb_with_row_padding(encoding: str, container) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    channels, _ = IMAGE_ENCODINGS[encoding]
    raw = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2),
        "mono8": rgb[..., :1],
    }[encoding]
    assert raw.shape[2] == channels
    out = image_to_rgb(message(raw, encoding, pad=3, container=container))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    expected = np.repeat(rgb[..., :1], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(out, expected)


def test_bad_images_say_what_is_wrong() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ObservationError, match="'16UC1' is not supported"):
        image_to_rgb(message(rgb, "16UC1"))
    short = message(rgb, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ObservationError, match="needs 12 bytes of data, got 11"):
        image_to_rgb(short)
    narrow = message(rgb, "rgb8")
    narrow.step = 5
    with pytest.raises(ObservationError, match="needs step >= 6"):
        image_to_rgb(narrow)
    with pytest.raises(ObservationError, match="must be positive"):
        image_to_rgb(SimpleNamespace(height=0, width=2, encoding="rgb8", step=6, data=b""))
