"""Episodes prepared once for fast batching, and the collation of windows into model tensors.

Everything per step is indexing into arrays that were normalized, padded and resized up
front, so a CPU worker never decodes or resizes inside the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gen0_policy.data.episode import Episode
from gen0_policy.data.windows import MixtureSource, Window, action_chunk, sample_rng
from gen0_policy.images import model_image
from gen0_policy.model.config import ModelConfig
from gen0_policy.model.language import LanguageEncoder
from gen0_policy.model.processor import Processor


@dataclass
class PreparedEpisode:
    states: np.ndarray  # (T, Dmax) normalized, padded
    actions: np.ndarray  # (T, Dmax) normalized, padded
    images: np.ndarray  # (T, N, 3, S, S) uint8
    camera_roles: np.ndarray  # (N,) int64
    camera_mask: np.ndarray  # (N,) bool
    dof_mask: np.ndarray  # (Dmax,) bool
    language: np.ndarray  # (L,) float32
    embodiment: int
    keyframes: np.ndarray  # (T,) int: the step whose state the goal head predicts from step t


def next_keyframes(actions: np.ndarray, gripper: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """For every step t, the first step >= t at which a gripper command crosses half open (a grasp or
    a release begins), else the last step. The state there is where the hand must be next: the
    object to grasp, then the place to put it; for a reach, where the episode ends. Predicting it
    (the goal loss) makes the network localize the object it must grasp, not only the episode's end.
    actions (T, D); gripper (D,) bool; lower/upper (D,) the action bounds (joint limits for a joint-space
    robot; for an end-effector robot the gripper command's range, e.g. the Sawyer's effort in [-1, 1])."""
    T = len(actions)
    if not gripper.any() or T < 2:
        return np.full(T, T - 1, dtype=np.int64)
    # (T, G) above half way: an open finger, or a gripping effort (0, the Sawyer experts' idle, is below)
    above = actions[:, gripper] > (lower[gripper] + upper[gripper]) / 2
    events = np.append(np.flatnonzero(np.any(above[1:] != above[:-1], axis=1)) + 1, T - 1)  # flips, then the end
    return events[np.searchsorted(events, np.arange(T), side="left")].astype(np.int64)


def shift_images(images: np.ndarray, rng: np.random.Generator, max_px: int) -> np.ndarray:
    """(N, 3, S, S) -> the same pictures, each moved by its own random whole-pixel offset in
    [-max_px, max_px] per axis, the uncovered border filled by repeating the edge (DrQ, Kostrikov et
    al. 2020: random shifts, a regularizer for learning from few pictures)."""
    S = images.shape[-1]
    padded = np.pad(images, ((0, 0), (0, 0), (max_px, max_px), (max_px, max_px)), mode="edge")
    out = np.empty_like(images)
    for cam, (dy, dx) in enumerate(rng.integers(0, 2 * max_px + 1, size=(len(images), 2))):
        out[cam] = padded[cam, :, dy : dy + S, dx : dx + S]
    return out


def prepare_episode(episode: Episode, processor: Processor, language: LanguageEncoder) -> PreparedEpisode:
    config = processor.config
    name = episode.embodiment
    embodiment = processor.embodiment(name)
    if episode.states.shape[1] != embodiment.dof or episode.actions.shape[1] != embodiment.dof:
        raise ValueError(
            f"episode of {name} has {episode.states.shape[1]}-D states and {episode.actions.shape[1]}-D actions; "
            f"{name} has {embodiment.dof} joints"
        )
    N, S, T = config.max_cameras, config.image_size, len(episode)
    layout = processor.camera_layout(name, list(episode.images))
    images = np.zeros((T, N, 3, S, S), dtype=np.uint8)
    roles = np.zeros(N, dtype=np.int64)
    present = np.zeros(N, dtype=bool)
    for slot, (cam, role) in enumerate(layout):
        images[:, slot] = model_image(episode.images[cam], S)
        roles[slot], present[slot] = role, True
    return PreparedEpisode(
        states=processor.normalize_state(name, episode.states),
        actions=processor.normalize_actions(name, episode.actions),
        images=images,
        camera_roles=roles,
        camera_mask=present,
        dof_mask=processor.dof_mask(name),
        language=language.encode([episode.instruction])[0],
        embodiment=processor.ids[name],
        keyframes=next_keyframes(
            episode.actions, embodiment.gripper_mask, embodiment.action_lower, embodiment.action_upper
        ),
    )


class BatchBuilder:
    """Windows -> the tensor dict ``Gen0Model.forward`` takes (actions, masks, flow noise and time)."""

    def __init__(
        self,
        config: ModelConfig,
        sources: Sequence[MixtureSource],
        processor: Processor,
        language: LanguageEncoder,
        state_dropout: float = 0.0,
        release_frames: bool = False,
        image_shift_px: int = 0,
    ) -> None:
        """``release_frames``: empty each Episode's ``images`` once its prepared copy exists, so a mixture's
        frames are held once, not twice (for a caller that owns the episodes and reads no frames after)."""
        self.config = config
        self.state_dropout = state_dropout  # fraction of samples whose joint state is hidden (see TrainConfig)
        self.image_shift_px = image_shift_px  # random shift of each picture, training only (see TrainConfig)

        def prepare(episode: Episode) -> PreparedEpisode:
            prepared = prepare_episode(episode, processor, language)
            if release_frames:
                episode.images = {}
            return prepared

        self.episodes = [[prepare(e) for e in s.episodes] for s in sources]
        # Per episode: is the chunk past its end learned as "stay"? Only where it ended at the goal.
        self.hold = [[s.hold_after_end and bool(e.success) for e in s.episodes] for s in sources]

    def __call__(self, windows: Sequence[Window], seed: int, step: int, indices: Sequence[int]) -> dict:
        cfg = self.config
        H = cfg.chunk_size
        eps = [self.episodes[w.source][w.episode] for w in windows]
        holds = [self.hold[w.source][w.episode] for w in windows]
        chunks, valid = zip(
            *(action_chunk(e.actions, w.t, H, h) for e, w, h in zip(eps, windows, holds, strict=True)), strict=True
        )
        committed = np.zeros((len(windows), H), dtype=bool)
        noise = np.empty((len(windows), H, cfg.max_dof), dtype=np.float32)
        flow_t = np.empty(len(windows), dtype=np.float32)
        states = np.stack([e.states[w.t] for e, w in zip(eps, windows, strict=True)])
        images = np.stack([e.images[w.t] for e, w in zip(eps, windows, strict=True)])
        for row, (w, i) in enumerate(zip(windows, indices, strict=True)):
            committed[row, : w.delay] = True
            rng = sample_rng(seed, step, i, stream=1)
            flow_t[row] = rng.random()
            noise[row] = rng.standard_normal((H, cfg.max_dof), dtype=np.float32)
            if self.state_dropout and rng.random() < self.state_dropout:
                states[row] = 0.0  # normalized: the mean pose, which says nothing about this episode
            if self.image_shift_px:  # its own stream: the noise and flow time stay those of no shift
                images[row] = shift_images(images[row], sample_rng(seed, step, i, stream=2), self.image_shift_px)
        return {
            "images": torch.from_numpy(images),
            "camera_roles": torch.from_numpy(np.stack([e.camera_roles for e in eps])),
            "camera_mask": torch.from_numpy(np.stack([e.camera_mask for e in eps])),
            "state": torch.from_numpy(states),
            "goal_state": torch.from_numpy(
                np.stack([e.states[e.keyframes[w.t]] for e, w in zip(eps, windows, strict=True)])
            ),
            "dof_mask": torch.from_numpy(np.stack([e.dof_mask for e in eps])),
            "language": torch.from_numpy(np.stack([e.language for e in eps])),
            "embodiment": torch.tensor([e.embodiment for e in eps], dtype=torch.long),
            "actions": torch.from_numpy(np.stack(chunks)),
            "action_mask": torch.from_numpy(np.stack(valid)),
            "committed": torch.from_numpy(committed),
            "noise": torch.from_numpy(noise),
            "flow_t": torch.from_numpy(flow_t),
        }
