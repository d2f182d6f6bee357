"""LeRobot v3 writer/reader: round trips, the layout against LeRobot's own reference files, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gen0_policy.data.episode import Episode
from gen0_policy.data.lerobot import LeRobotDataset, LeRobotWriter, load_episodes
from gen0_policy.data.stats import load_stats
from gen0_policy.embodiment import Embodiment, JointSpec
from gen0_policy.errors import DatasetError
from gen0_policy.model.processor import JointStats

REFERENCE = Path(__file__).parent / "data" / "lerobot_v3_sample"  # written by LeRobot 0.4.4 itself
CAMS = ("front", "wrist")


def toy_embodiment(dof: int = 3) -> Embodiment:
    joints = tuple(JointSpec(f"joint{i}", -3.0, 3.0, 2.0, 10.0, 0.0) for i in range(dof))
    return Embodiment(name="toy", description="test arm", joints=joints, cameras=(), controllers=())


def smooth_frames(rng: np.random.Generator, length: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frames video codecs can compress well: a moving gradient plus a per-episode colour."""
    y, x = np.mgrid[0:h, 0:w]
    colour = rng.integers(40, 200, 3)
    frames = np.empty((length, h, w, 3), np.uint8)
    for t in range(length):
        frames[t] = np.clip(colour + 40 * np.sin((x[..., None] + 2 * t) / 8.0) + y[..., None], 0, 255)
    return frames


def make_episode(rng: np.random.Generator, length: int, instruction: str, success: bool = True, **kw) -> Episode:
    return Episode(
        embodiment="toy",
        instruction=instruction,
        fps=10.0,
        states=rng.normal(size=(length, 3)),
        actions=rng.normal(size=(length, 3)),
        images={cam: smooth_frames(rng, length) for cam in CAMS},
        success=success,
        task=instruction.split()[0],
        metadata={"operator": "ada", "seed": length},
        **kw,
    )


@pytest.fixture
def episodes() -> list[Episode]:
    rng = np.random.default_rng(0)
    return [
        make_episode(rng, 15, "pick the cube"),
        make_episode(rng, 12, "push the block", success=False),
        make_episode(rng, 18, "pick the cube"),
    ]


def write(root: Path, episodes: list[Episode], **kw) -> Path:
    with LeRobotWriter(root, toy_embodiment(), fps=10.0, **kw) as writer:
        for episode in episodes:
            writer.add_episode(episode)
    return root


def assert_same(read: Episode, original: Episode, tolerance: float = 6.0) -> None:
    np.testing.assert_array_equal(read.states, original.states)
    np.testing.assert_array_equal(read.actions, original.actions)
    assert (read.instruction, read.task, read.success, read.embodiment) == (
        original.instruction,
        original.task,
        original.success,
        original.embodiment,
    )
    assert read.metadata["operator"] == "ada" and read.metadata["seed"] == len(original)
    assert read.fps == original.fps
    assert sorted(read.images) == sorted(original.images)
    for cam, frames in original.images.items():
        assert read.images[cam].shape == frames.shape
        error = np.abs(read.images[cam].astype(np.int16) - frames).mean()
        assert error < tolerance, f"camera {cam}: mean abs error {error} after video coding"


@pytest.mark.parametrize("file_mb", [100.0, 1e-4], ids=["one-file", "one-file-per-episode"])
def test_round_trip(tmp_path: Path, episodes: list[Episode], file_mb: float) -> None:
    root = write(tmp_path / "ds", episodes, data_files_size_in_mb=file_mb, video_files_size_in_mb=file_mb)
    ds = LeRobotDataset(root)
    assert (ds.num_episodes, ds.num_frames, ds.fps, ds.robot_type) == (3, 45, 10.0, "toy")
    assert ds.tasks == ["pick the cube", "push the block"]
    expected_files = 1 if file_mb > 1 else 3
    assert len(list(root.glob("data/*/*.parquet"))) == expected_files
    assert len(list(root.glob("videos/observation.images.front/*/*.mp4"))) == expected_files
    for i in (2, 0, 1):  # out of order: each read seeks on its own
        assert_same(ds.episode(i), episodes[i])
    for read, original in zip(load_episodes(root), episodes, strict=True):
        assert_same(read, original)


def test_resize_on_read(tmp_path: Path, episodes: list[Episode]) -> None:
    root = write(tmp_path / "ds", episodes[:1])
    read = LeRobotDataset(root).episode(0, image_size=(24, 16))
    assert read.images["front"].shape == (15, 16, 24, 3)
    assert load_episodes(root, image_size=(24, 16))[0].images["wrist"].shape == (15, 16, 24, 3)


def _reference_schemas() -> dict[str, dict[str, str]]:
    """Top-level column -> type of each parquet file described in the reference schemas.txt."""
    schemas: dict[str, dict[str, str]] = {}
    current = None
    for line in (REFERENCE / "schemas.txt").read_text().splitlines():
        header = re.match(r"== (\S+\.parquet):", line)
        if header:
            current = schemas.setdefault(header.group(1), {})
        elif line.startswith("==") or line.startswith("first row"):
            current = None if line.startswith("==") else current
        elif current is not None and not line.startswith(" ") and ": " in line:
            name, typ = line.split(": ", 1)
            current[name] = typ
    return schemas


def _actual_schema(path: Path) -> dict[str, str]:
    return {field.name: str(field.type) for field in pq.read_schema(path)}


def test_layout_matches_lerobot_reference(tmp_path: Path) -> None:
    """Same files, same info.json keys, same columns and column types as a dataset LeRobot wrote."""
    rng = np.random.default_rng(1)
    reach = [make_episode(rng, 10, "reach") for _ in range(2)]
    for ep in reach:
        ep.images = {"cam": ep.images["front"]}
    root = write(tmp_path / "ds", reach)
    reference_info = json.loads((REFERENCE / "info.json").read_text())
    info = json.loads((root / "meta" / "info.json").read_text())
    assert list(info) == list(reference_info)
    assert list(info["features"]) == list(reference_info["features"])
    for key, feature in reference_info["features"].items():
        ours = info["features"][key]
        assert ours["dtype"] == feature["dtype"], key
        assert list(ours) == list(feature), key
        if "info" in feature:
            assert list(ours["info"]) == list(feature["info"])
            assert ours["info"]["video.pix_fmt"] == "yuv420p"
    assert info["features"]["observation.state"]["names"] == ["joint0", "joint1", "joint2"]
    assert info["codebase_version"] == "v3.0" and info["splits"] == {"train": "0:2"}

    reference = _reference_schemas()
    assert set(reference) == {
        "data/chunk-000/file-000.parquet",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
    }
    for rel, columns in reference.items():
        actual = _actual_schema(root / rel)
        for name, typ in columns.items():
            assert name in actual, f"{rel}: column {name} missing"
            assert actual[name] == typ.replace("[7]", "[3]"), f"{rel}: column {name} is {actual[name]}, want {typ}"
        extra = set(actual) - set(columns)
        assert all(name.startswith("gen0/") for name in extra), f"{rel}: unexpected columns {extra}"
    stats = json.loads((root / "meta" / "stats.json").read_text())
    reference_keys = {
        "frame_index",
        "episode_index",
        "action",
        "observation.images.cam",
        "timestamp",
        "task_index",
        "index",
        "observation.state",
    }
    assert set(stats) == reference_keys
    assert all(
        sorted(v) == ["count", "max", "mean", "min", "q01", "q10", "q50", "q90", "q99", "std"] for v in stats.values()
    )
    assert (root / "videos/observation.images.cam/chunk-000/file-000.mp4").is_file()


def test_episode_boundaries_and_video_spans(tmp_path: Path, episodes: list[Episode]) -> None:
    root = write(tmp_path / "ds", episodes)
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    start = 0
    for row, episode in zip(rows, episodes, strict=True):
        assert (row["dataset_from_index"], row["dataset_to_index"], row["length"]) == (
            start,
            start + len(episode),
            len(episode),
        )
        assert row["videos/observation.images.front/from_timestamp"] == pytest.approx(start / 10.0)
        assert row["videos/observation.images.front/to_timestamp"] == pytest.approx((start + len(episode)) / 10.0)
        start += len(episode)
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.column("index").to_pylist() == list(range(45))
    assert data.column("task_index").to_pylist() == [0] * 15 + [1] * 12 + [0] * 18
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column("__index_level_0__").to_pylist() == ["pick the cube", "push the block"]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]


def test_stats_match_numpy(tmp_path: Path, episodes: list[Episode]) -> None:
    root = write(tmp_path / "ds", episodes)
    stats = load_stats(root)
    states = np.concatenate([e.states for e in episodes]).astype(np.float64)
    actions = np.concatenate([e.actions for e in episodes]).astype(np.float64)
    for key, values in (("observation.state", states), ("action", actions)):
        np.testing.assert_allclose(stats[key]["mean"], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]["std"], values.std(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]["min"], values.min(0))
        np.testing.assert_allclose(stats[key]["max"], values.max(0))
        assert stats[key]["count"].tolist() == [45]
        assert np.all(stats[key]["q01"] <= stats[key]["q50"]) and np.all(stats[key]["q50"] <= stats[key]["q99"])
    assert stats["observation.images.front"]["mean"].shape == (3, 1, 1)
    assert np.all((stats["observation.images.front"]["min"] >= 0) & (stats["observation.images.front"]["max"] <= 1))
    # One code path: the trainer's per-robot statistics from the episodes equal the dataset's
    # (aggregated per episode), and they normalize its actions to zero mean and unit spread.
    from_dataset = JointStats.from_stats(stats["observation.state"], stats["action"])
    from_episodes = JointStats.from_arrays(states, actions)
    for key in ("state_mean", "state_std", "action_mean", "action_std"):
        np.testing.assert_allclose(getattr(from_dataset, key), getattr(from_episodes, key), rtol=1e-5, atol=1e-6)
    z = (actions - from_dataset.action_mean) / from_dataset.action_std
    moved = actions.std(0) > 1e-2  # joints that never moved pass through centred (MIN_STD)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0)[moved], 1, atol=1e-4)


def test_nan_actions_rejected_before_writing(tmp_path: Path, episodes: list[Episode]) -> None:
    bad = episodes[1]
    bad.actions[4, 2] = np.nan
    root = tmp_path / "ds"
    with LeRobotWriter(root, toy_embodiment(), fps=10.0) as writer:
        writer.add_episode(episodes[0])
        with pytest.raises(DatasetError, match=r"NaN/inf values in actions \(first at step 4, joint joint2\)"):
            writer.add_episode(bad)
        writer.add_episode(episodes[2])
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2  # the good episodes are kept, nothing half-written
    assert_same(ds.episode(1), episodes[2])


def test_mismatched_episodes_rejected(tmp_path: Path, episodes: list[Episode]) -> None:
    with LeRobotWriter(tmp_path / "ds", toy_embodiment(), fps=10.0) as writer:
        writer.add_episode(episodes[0])
        other = make_episode(np.random.default_rng(3), 5, "x")
        other.images = {"front": other.images["front"]}
        with pytest.raises(DatasetError, match="same cameras"):
            writer.add_episode(other)
        with pytest.raises(DatasetError, match="resample"):
            writer.add_episode(Episode("toy", "x", 20.0, np.zeros((3, 3)), np.zeros((3, 3))))
        with pytest.raises(DatasetError, match="embodiment 'ur5e'"):
            writer.add_episode(Episode("ur5e", "x", 10.0, np.zeros((3, 3)), np.zeros((3, 3))))
        with pytest.raises(DatasetError, match="3 joints of toy"):
            writer.add_episode(Episode("toy", "x", 10.0, np.zeros((3, 4)), np.zeros((3, 4))))
    with pytest.raises(DatasetError, match="already holds a dataset"):
        LeRobotWriter(tmp_path / "ds", toy_embodiment(), fps=10.0)
    with pytest.raises(DatasetError, match="no episodes"), LeRobotWriter(tmp_path / "empty", toy_embodiment(), 10.0):
        pass


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("meta/info.json", "not a LeRobot v3 dataset"),
        ("meta/tasks.parquet", "missing dataset file"),
        ("meta/episodes/chunk-000/file-000.parquet", "no meta/episodes"),
        ("data/chunk-000/file-000.parquet", "missing dataset file"),
        ("videos/observation.images.wrist/chunk-000/file-000.mp4", "missing video file"),
    ],
)
def test_missing_files(tmp_path: Path, episodes: list[Episode], remove: str, message: str) -> None:
    root = write(tmp_path / "ds", episodes[:2])
    (root / remove).unlink()
    with pytest.raises(DatasetError, match=message):
        LeRobotDataset(root).episode(1)


def test_corrupt_files(tmp_path: Path, episodes: list[Episode]) -> None:
    root = write(tmp_path / "ds", episodes[:2])
    video = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(DatasetError, match="video"):
        load_episodes(root)
    (root / "data/chunk-000/file-000.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="cannot read"):
        LeRobotDataset(root).episode(0)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match=r"only .v3\.0. is supported"):
        LeRobotDataset(root)


def test_lerobot_reads_it_with_pandas(tmp_path: Path, episodes: list[Episode]) -> None:
    """LeRobot loads meta/tasks.parquet with pandas and looks tasks up by their text (tasks.loc[task])."""
    import pandas as pd

    root = write(tmp_path / "ds", episodes)
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert tasks.index.tolist() == ["pick the cube", "push the block"]
    assert int(tasks.loc["push the block"].task_index) == 1
    episodes_meta = pd.read_parquet(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes_meta["length"].tolist() == [15, 12, 18]
    data = pd.read_parquet(root / "data" / "chunk-000" / "file-000.parquet")
    np.testing.assert_array_equal(np.stack(data["action"].to_numpy())[:15], episodes[0].actions)
