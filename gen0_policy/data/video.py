"""Rollout videos: an episode's camera views side by side, with a strip along the bottom that says
how it is going (grey while running, green from the moment of success, red at the end of a failure),
so a person sees what the policy did without reading a log."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gen0_policy.data.lerobot.codec import VideoFile

STRIP_PX = 12  # height of the status strip
GREY, GREEN, RED = (90, 90, 90), (40, 200, 60), (220, 40, 40)
FAIL_MARK_S = 0.5  # a failed episode's last half second is marked red


def compose_frames(images: Mapping[str, np.ndarray], success_frame: int | None, fps: float) -> np.ndarray:
    """{camera: (T, H, W, 3) uint8} -> (T, H + STRIP_PX, sum W, 3): cameras left to right in the given
    order (each padded to the tallest), the status strip below. ``success_frame``: first successful
    frame, None for a failed episode."""
    if not images:
        raise ValueError("an episode video needs at least one camera")
    cams = list(images.values())
    T, H = len(cams[0]), max(c.shape[1] for c in cams)
    if any(len(c) != T for c in cams):
        raise ValueError(f"cameras have different frame counts: {[len(c) for c in cams]}")
    W = sum(c.shape[2] for c in cams)
    W += W % 2  # H.264 with yuv420p needs even sizes
    out = np.zeros((T, H + STRIP_PX + (H + STRIP_PX) % 2, W, 3), np.uint8)
    x = 0
    for frames in cams:
        out[:, : frames.shape[1], x : x + frames.shape[2]] = frames
        x += frames.shape[2]
    strip = out[:, H:]
    strip[:] = GREY
    if success_frame is not None:
        strip[success_frame:] = GREEN
    else:
        strip[max(0, T - round(FAIL_MARK_S * fps)) :] = RED
    return out


def write_episode_video(
    path: Path, images: Mapping[str, np.ndarray], fps: float, success_frame: int | None, crf: int = 23
) -> Path:
    """Write one episode as an H.264 MP4 at ``fps``; returns ``path``."""
    frames = compose_frames(images, success_frame, fps)
    video = VideoFile(Path(path), frames.shape[2], frames.shape[1], fps, crf, gop=max(1, round(fps)))
    try:
        video.write(frames)
    finally:
        video.close()
    return Path(path)
