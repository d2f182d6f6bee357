"""The mirrored transforms around the network (openpi style): raw robot arrays in, normalized and
padded tensors to the model; normalized padded chunks out, absolute joint targets back.

Statistics are per embodiment (a gripper in metres and a shoulder in radians must not share a
scale) and travel with the weights in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CheckpointError, DatasetError, ObservationError
from gen0_policy.images import model_image
from gen0_policy.model.config import CAMERA_ROLES, ModelConfig

MIN_STD = 1e-2  # a joint that (almost) never moved passes through centred, not blown up


@dataclass(frozen=True)
class JointStats:
    """Mean/std of states and actions of one embodiment, in its joint order."""

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    def __post_init__(self) -> None:
        arrays = [np.asarray(getattr(self, k), dtype=np.float32) for k in self._keys()]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise CheckpointError(f"normalization stats must be four (D,) arrays, got {[a.shape for a in arrays]}")
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise CheckpointError("normalization stats contain NaN or inf; recompute them from clean data")
        for key, value in zip(self._keys(), arrays, strict=True):
            object.__setattr__(self, key, value)

    @staticmethod
    def _keys() -> tuple[str, ...]:
        return ("state_mean", "state_std", "action_mean", "action_std")

    @property
    def dof(self) -> int:
        return len(self.state_mean)

    @classmethod
    def from_stats(cls, state: Mapping[str, Any], action: Mapping[str, Any]) -> JointStats:
        """From LeRobot-format statistics (``meta/stats.json`` entries, :func:`gen0_policy.data.stats.compute_stats`)
        of ``observation.state`` and ``action``; std is floored at MIN_STD."""
        try:
            values = [np.asarray(s[k], np.float64) for s in (state, action) for k in ("mean", "std")]
        except KeyError as exc:
            raise DatasetError(f"statistics lack {exc}; need mean and std of states and actions") from exc
        state_mean, state_std, action_mean, action_std = values
        return cls(state_mean, np.maximum(state_std, MIN_STD), action_mean, np.maximum(action_std, MIN_STD))

    @classmethod
    def from_arrays(cls, states: np.ndarray, actions: np.ndarray) -> JointStats:
        """From (T, D) states and actions, through the same :func:`~gen0_policy.data.stats.compute_stats`
        that writes a dataset's statistics (NaN or inf raise DatasetError)."""
        from gen0_policy.data.stats import compute_stats

        return cls.from_stats(compute_stats(states), compute_stats(actions))

    def to_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in self._keys()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointStats:
        try:
            return cls(*(np.asarray(data[k], dtype=np.float32) for k in cls._keys()))
        except KeyError as exc:
            raise CheckpointError(f"normalization stats lack {exc}; they need {list(cls._keys())}") from exc


class Processor:
    """Everything between robot arrays and model tensors, for the embodiments a model knows."""

    def __init__(self, config: ModelConfig, embodiments: Sequence[Embodiment], stats: Mapping[str, JointStats]) -> None:
        if len(embodiments) > config.embodiment_slots:
            raise CheckpointError(
                f"{len(embodiments)} embodiments but the model has {config.embodiment_slots} embodiment slots; "
                "raise model.embodiment_slots"
            )
        self.config = config
        self.embodiments = {e.name: e for e in embodiments}
        self.ids = {e.name: i for i, e in enumerate(embodiments)}
        for e in embodiments:
            if e.dof > config.max_dof:
                raise CheckpointError(f"embodiment {e.name} has {e.dof} joints but the model pads to {config.max_dof}")
            if e.name not in stats:
                raise CheckpointError(f"no normalization stats for embodiment {e.name}; have {sorted(stats)}")
            if stats[e.name].dof != e.dof:
                raise CheckpointError(f"stats of {e.name} have {stats[e.name].dof} joints, the robot has {e.dof}")
        self.stats = dict(stats)

    # -- lookups ---------------------------------------------------------------------------------
    def embodiment(self, name: str) -> Embodiment:
        if name not in self.embodiments:
            raise CheckpointError(
                f"this policy was not trained on embodiment {name!r}; it knows {sorted(self.embodiments)}. "
                "Post-train it on data of that robot (gen0 train init_from=CHECKPOINT ...)"
            )
        return self.embodiments[name]

    def action_space(self, name: str) -> str:
        """joint_position or end_effector_delta: what this robot's action rows mean. The padding and
        masks are the same for both; the network tells them apart by the embodiment token."""
        return self.embodiment(name).action_space

    def dof_mask(self, name: str) -> np.ndarray:
        mask = np.zeros(self.config.max_dof, dtype=bool)
        mask[: self.embodiment(name).dof] = True
        return mask

    def camera_layout(self, name: str, available: Sequence[str]) -> list[tuple[str, int]]:
        """(camera name, role id) for the model's camera slots: the robot's cameras in its own order,
        then unknown ones by name, at most ``max_cameras``."""
        embodiment = self.embodiment(name)
        known = [c.name for c in embodiment.cameras if c.name in available]
        extra = sorted(set(available) - set(known))
        roles = {c.name: CAMERA_ROLES.index(c.role) for c in embodiment.cameras}
        return [(cam, roles.get(cam, 0)) for cam in (known + extra)[: self.config.max_cameras]]

    # -- normalization (mirrored) ----------------------------------------------------------------
    def pad(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        out = np.zeros((*x.shape[:-1], self.config.max_dof), dtype=np.float32)
        out[..., : x.shape[-1]] = x
        return out

    def normalize_state(self, name: str, x: np.ndarray) -> np.ndarray:
        s = self.stats[self.embodiment(name).name]
        return self.pad((np.asarray(x, np.float32) - s.state_mean) / s.state_std)

    def normalize_actions(self, name: str, x: np.ndarray) -> np.ndarray:
        s = self.stats[self.embodiment(name).name]
        return self.pad((np.asarray(x, np.float32) - s.action_mean) / s.action_std)

    def unnormalize_actions(self, name: str, y: np.ndarray) -> np.ndarray:
        s = self.stats[self.embodiment(name).name]
        return (np.asarray(y, np.float32)[..., : s.dof] * s.action_std + s.action_mean).astype(np.float32)

    def action_scale(self, name: str) -> np.ndarray:
        return self.stats[self.embodiment(name).name].action_std

    # -- one observation -> model tensors (batch of 1) -------------------------------------------
    def observation(self, observation: Mapping[str, Any], language: np.ndarray) -> dict[str, torch.Tensor]:
        name = observation.get("embodiment")
        if not isinstance(name, str):
            raise ObservationError("observation needs 'embodiment': the robot's name, e.g. 'panda'")
        embodiment = self.embodiment(name)
        joints = np.asarray(observation.get("joint_positions"), dtype=np.float32)
        if joints.shape != (embodiment.dof,):
            raise ObservationError(
                f"joint_positions of {name} must have shape ({embodiment.dof},) in the order "
                f"{list(embodiment.joint_names)}, got {joints.shape}"
            )
        if not np.all(np.isfinite(joints)):
            raise ObservationError(f"joint_positions contain NaN or inf: {joints.tolist()}")
        images = observation.get("images") or {}
        if not isinstance(images, Mapping):
            raise ObservationError("observation 'images' must map camera names to (H, W, 3) uint8 arrays")
        layout = self.camera_layout(name, list(images))
        S, N = self.config.image_size, self.config.max_cameras
        pixels = np.zeros((N, 3, S, S), dtype=np.uint8)
        roles = np.zeros(N, dtype=np.int64)
        present = np.zeros(N, dtype=bool)
        for slot, (cam, role) in enumerate(layout):
            frame = np.asarray(images[cam])
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
                raise ObservationError(
                    f"camera {cam}: need a uint8 (H, W, 3) RGB image, got {frame.dtype} {frame.shape}"
                )
            pixels[slot] = model_image(frame, S)
            roles[slot], present[slot] = role, True
        batch = {
            "images": torch.from_numpy(pixels)[None],
            "camera_roles": torch.from_numpy(roles)[None],
            "state": torch.from_numpy(self.normalize_state(name, joints))[None],
            "dof_mask": torch.from_numpy(self.dof_mask(name))[None],
            "language": torch.from_numpy(np.asarray(language, np.float32).reshape(1, -1)),
            "embodiment": torch.tensor([self.ids[name]]),
        }
        if not present.all():
            batch["camera_mask"] = torch.from_numpy(present)[None]
        return batch

    # -- serialization ---------------------------------------------------------------------------
    def stats_dict(self) -> dict[str, dict[str, list[float]]]:
        return {name: s.to_dict() for name, s in self.stats.items()}
