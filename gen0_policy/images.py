"""The one image path from a camera frame to the model's input.

Every consumer calls ``fit_image``: data collection and ``gen0 data build`` when a user asks for
smaller stored frames, training when it decodes a dataset, rollouts, the policy node and
post-training when they hand a frame to the network. The rule, so a 640x480 robot camera, the
simulator's 320x240 and a 64x64 thumbnail of the same scene give the same picture:

1. crop the frame's centre to the target's aspect ratio (a 4:3 frame loses equal strips left and
   right to become square; nothing is ever squashed), then
2. resize with an antialiased bilinear filter (an area average when shrinking, so a small target
   does not flicker in and out of the sampled pixels).

A camera modelled with a vertical field of view (MuJoCo's ``fovy``, a pinhole K's fy) keeps it: a
square crop of a 4:3 render shows exactly what a square render with the same ``fovy`` shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gen0_policy.errors import ObservationError

ASPECT_TOLERANCE = 0.02  # relative; 640x480 and 320x240 agree, 4:3 and 16:9 do not


def centre_crop_box(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) of the largest centred box with width/height = ``aspect``."""
    if height <= 0 or width <= 0 or aspect <= 0:
        raise ObservationError(f"cannot crop a {width}x{height} frame to aspect {aspect}")
    if width > height * aspect:  # too wide: cut left and right
        crop_w, crop_h = max(1, round(height * aspect)), height
    else:  # too tall: cut top and bottom
        crop_w, crop_h = width, max(1, round(width / aspect))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def fit_image(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (..., H, W, 3) of any size -> uint8 (..., height, width, 3): centre crop to the
    target's aspect, then antialiased resize. A frame already of the target size passes unchanged."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise ObservationError(f"need uint8 (..., H, W, 3) RGB frames, got {frames.dtype} {frames.shape}")
    if width <= 0 or height <= 0:
        raise ObservationError(f"target size must be > 0, got {width}x{height}")
    h, w = frames.shape[-3:-1]
    if (h, w) == (height, width):
        return frames
    top, left, crop_h, crop_w = centre_crop_box(h, w, width / height)
    lead = frames.shape[:-3]
    crop = frames[..., top : top + crop_h, left : left + crop_w, :].reshape(-1, crop_h, crop_w, 3)
    if (crop_h, crop_w) == (height, width):
        return np.ascontiguousarray(crop).reshape(*lead, height, width, 3)
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(0, 3, 1, 2).float()  # (N, 3, h, w)
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    out = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out.numpy().reshape(*lead, height, width, 3)


def model_image(frames: np.ndarray, size: int) -> np.ndarray:
    """The network's view of camera frames: uint8 (..., H, W, 3) -> uint8 (..., 3, size, size)."""
    square = fit_image(frames, size, size)
    return np.ascontiguousarray(np.moveaxis(square, -1, -3))


def aspect_mismatch(camera: str, seen_wh: tuple[int, int], trained_wh: tuple[int, int]) -> str | None:
    """A sentence saying why a camera's frames differ in shape from the training data's, or None.

    Only the aspect ratio matters (the crop and resize take care of size); a different aspect means
    a different field of view left and right than the policy was trained on."""
    seen, trained = seen_wh[0] / seen_wh[1], trained_wh[0] / trained_wh[1]
    if abs(seen / trained - 1.0) <= ASPECT_TOLERANCE:
        return None
    return (
        f"camera {camera} sends {seen_wh[0]}x{seen_wh[1]} frames (aspect {seen:.3f}) but the policy was trained "
        f"on {trained_wh[0]}x{trained_wh[1]} (aspect {trained:.3f}): its field of view differs from training; "
        "expect worse actions, or post-train on data from this camera"
    )


def mount_mismatch(camera: str, mount: Any, trained_mount: Any) -> str | None:
    """A sentence saying the camera hangs elsewhere than in the training data, or None. Mounts are the
    embodiment description's ``sim.cameras`` entries (None: the simulator's own placement)."""
    if mount == trained_mount:
        return None
    return (
        f"camera {camera} is mounted at {mount or 'the simulator default'} but the policy was trained with it at "
        f"{trained_mount or 'the simulator default'}: it sees the scene from elsewhere; expect worse actions, "
        "or train on data from this mount"
    )
