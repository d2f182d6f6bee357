"""The one image path (gen0_policy/images.py): crop geometry, the same scene at three camera
resolutions giving the same model input, every consumer producing exactly fit_image's output, and
the aspect-mismatch warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_fixtures import make_embodiment, make_episode

from gen0_policy.errors import ObservationError
from gen0_policy.images import aspect_mismatch, centre_crop_box, fit_image, model_image


def test_centre_crop_box_keeps_the_middle_at_the_target_aspect() -> None:
    assert centre_crop_box(240, 320, 1.0) == (0, 40, 240, 240)  # 4:3 -> square: strips left and right
    assert centre_crop_box(480, 640, 4 / 3) == (0, 0, 480, 640)  # already 4:3
    assert centre_crop_box(400, 300, 1.0) == (50, 0, 300, 300)  # portrait: strips top and bottom
    assert centre_crop_box(1080, 1920, 4 / 3) == (0, 240, 1080, 1440)
    with pytest.raises(ObservationError):
        centre_crop_box(0, 10, 1.0)


def test_fit_image_crops_instead_of_squashing() -> None:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, :40] = 255  # a white strip in the left eighth: outside the square crop
    frame[100:140, 140:180, 1] = 200  # a green square in the middle
    out = fit_image(frame, 64, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[..., 0].max() == 0  # the strip is cropped away, not squashed in
    assert out[32, 32, 1] == 200 and out[0, 0, 1] == 0  # the square stays centred
    assert fit_image(frame, 320, 240) is frame  # the target size passes unchanged
    batch = np.stack([frame, frame[:, ::-1]])
    assert fit_image(batch, 64, 64).shape == (2, 64, 64, 3)
    assert model_image(batch, 32).shape == (2, 3, 32, 32)
    with pytest.raises(ObservationError):
        fit_image(frame.astype(np.float32), 64, 64)


@pytest.mark.parametrize("camera", ["scene", "wrist"])
def test_one_scene_at_three_resolutions_gives_the_same_model_input(camera: str) -> None:
    """A 640x480, a 320x240 and a square 64x64 render of the same camera (same vertical field of
    view) become the same 64x64 input: the crop keeps the field of view, the resize is antialiased."""
    from gen0_policy.sim.env import make_env

    inputs = {}
    for size in ((640, 480), (320, 240), (64, 64)):
        with make_env("panda", "pick_place", seed=3, camera_size=size) as env:
            inputs[size] = model_image(env.render(camera), 64).astype(np.float32)
    high, native, square = inputs[(640, 480)], inputs[(320, 240)], inputs[(64, 64)]
    assert np.abs(high - native).mean() < 2.0, np.abs(high - native).mean()  # of 255
    # A 64x64 render samples one point per pixel (no antialiasing), so edges differ; the picture does not.
    assert np.abs(square - native).mean() < 8.0, np.abs(square - native).mean()
    assert np.abs(np.roll(native, 8, axis=-1) - native).mean() > 2 * np.abs(square - native).mean()


def test_every_consumer_gives_exactly_fit_images_output(tmp_path: Path) -> None:
    """Training (prepare_episode), inference (Processor, used by rollouts and the node), dataset
    decoding and recording all produce fit_image's bytes for the same frame."""
    from gen0_policy.data.lerobot import LeRobotDataset, LeRobotWriter
    from gen0_policy.model.config import preset
    from gen0_policy.model.language import language_encoder
    from gen0_policy.model.processor import JointStats, Processor
    from gen0_policy.train.batch import prepare_episode

    rng = np.random.default_rng(0)
    episode = make_episode("panda", 0, steps=6, image=8)
    frames = rng.integers(0, 256, (6, 240, 320, 3), dtype=np.uint8)
    episode.images = {"scene": frames, "wrist": frames[:, ::-1].copy()}
    embodiment = make_embodiment("panda")
    config = preset("test", language_encoder="hash")
    S = config.image_size
    stats = JointStats.from_arrays(episode.states, episode.actions)
    processor = Processor(config, [embodiment], {"panda": stats})
    language = language_encoder("hash", config.language_dim)

    expected = model_image(frames, S)
    prepared = prepare_episode(episode, processor, language)
    assert np.array_equal(prepared.images[:, 0], expected)
    for t in (0, 5):
        obs = {"embodiment": "panda", "joint_positions": episode.states[t], "images": {"scene": frames[t]}}
        batch = processor.observation(obs, np.zeros(config.language_dim, np.float32))
        assert np.array_equal(batch["images"][0, 0].numpy(), expected[t])

    with LeRobotWriter(tmp_path / "ds", embodiment, episode.fps) as writer:
        writer.add_episode(episode)
    dataset = LeRobotDataset(tmp_path / "ds")
    native = dataset.episode(0).images["scene"]
    assert native.shape == (6, 240, 320, 3)  # stored as the camera sent it
    assert np.array_equal(dataset.episode(0, image_size=(S, S)).images["scene"], fit_image(native, S, S))
    assert np.array_equal(dataset.episodes(image_size=(S, S))[0].images["scene"], fit_image(native, S, S))


def test_aspect_mismatch_message() -> None:
    assert aspect_mismatch("scene", (640, 480), (320, 240)) is None
    message = aspect_mismatch("scene", (640, 360), (320, 240))
    assert message is not None and "scene" in message and "field of view" in message
    assert aspect_mismatch("wrist", (64, 64), (320, 240)) is not None
