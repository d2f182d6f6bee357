"""Recorded bags -> training episodes, with ``rosbags`` (no rclpy).

One bag holds one episode (the recorder's layout). It is resampled onto a fixed control clock
t_k = start + k / fps, using the bag's log (receive) times, which all come from one clock:

- state[k]: for each embodiment joint, the latest /joint_states position at or before t_k
  (messages may carry any joint order or subsets; joints are matched by name);
- action[k]: the command in force at t_k, per joint: the latest JointTrajectory (evaluated at t_k
  along its points) or Float64MultiArray on ``/<controller>/commands``; a joint not commanded yet
  holds its measured position at the start, as ros2_control controllers do;
- image[cam][k]: the latest frame at or before t_k (what a policy running then would have seen).

The clock starts once every stream has spoken (joint states, each camera, the first command) and
ends at the last joint state or frame, so no step is invented. Each episode gets an
:class:`EpisodeQuality` report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.data.quality import EpisodeQuality, StreamQuality
from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import DatasetError, EmbodimentError, ObservationError
from gen0_policy.images import fit_image
from gen0_policy.messages import SECONDS_PER_NANOSECOND, image_to_rgb, stamp_seconds

IMAGE_TYPE = "sensor_msgs/msg/Image"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
TRAJECTORY_TYPE = "trajectory_msgs/msg/JointTrajectory"
ARRAY_TYPE = "std_msgs/msg/Float64MultiArray"
EPISODE_INFO_TYPE = "gen0_msgs/msg/EpisodeInfo"
TASK_STATUS_TYPE = "gen0_msgs/msg/TaskStatus"


@dataclass(frozen=True)
class BuildConfig:
    fps: float = 20.0  # control rate of the built episodes, Hz
    image_size: tuple[int, int] | None = None  # (width, height) of stored frames; None = as recorded
    embodiment: str | None = None  # None = the embodiment named in each bag's EpisodeInfo
    joint_states_topic: str = "/joint_states"
    camera_topics: tuple[str, ...] | None = None  # None = every sensor_msgs/Image topic
    command_topics: tuple[str, ...] | None = None  # None = every JointTrajectory / Float64MultiArray topic

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise DatasetError(f"fps must be positive, got {self.fps}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) <= 0):
            raise DatasetError(f"image size must be (width, height) > 0, got {self.image_size}")


def camera_name(topic: str) -> str:
    """/scene/image_raw -> scene; /camera/wrist/image_raw -> wrist; /front -> front."""
    parts = [p for p in topic.split("/") if p and p not in ("image_raw", "image", "image_color", "image_rect")]
    if not parts:
        raise DatasetError(f"cannot name a camera after topic {topic!r}")
    return parts[-1]


def find_bags(paths: Iterable[Path]) -> list[Path]:
    """Bag folders among ``paths``: a bag itself, or a folder whose sub-folders are bags."""
    bags: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise DatasetError(f"no such bag or folder: {path}")
        if _is_bag(path):
            bags.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_dir() and _is_bag(p)) if path.is_dir() else []
        if not found:
            raise DatasetError(f"{path} is neither a rosbag2 folder nor a folder of them")
        bags += found
    return bags


def _is_bag(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata.yaml").is_file() or any(path.glob("*.mcap")))


# --------------------------------------------------------------------------------- reading


@dataclass
class _Series:
    """Per-joint (times, positions) collected from messages carrying any subset of joints."""

    times: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, t: float, names: Sequence[str], positions: Sequence[float]) -> None:
        for name, value in zip(names, positions, strict=False):
            self.times.setdefault(name, []).append(t)
            self.values.setdefault(name, []).append(value)


@dataclass
class _Command:
    time: float
    joints: tuple[str, ...]
    offsets: np.ndarray  # (P,) time_from_start of each point, s
    positions: np.ndarray  # (P, J)


@dataclass
class _BagContents:
    states: _Series = field(default_factory=_Series)
    state_times: list[float] = field(default_factory=list)
    commands: dict[str, list[_Command]] = field(default_factory=dict)  # topic -> commands
    camera_topics: dict[str, str] = field(default_factory=dict)  # cam -> topic
    frame_times: dict[str, list[float]] = field(default_factory=dict)
    episode_info: Any = None
    task_status: Any = None
    custom: dict[str, Any] = field(default_factory=dict)


def _deserialize(reader, raw: bytes, typename: str) -> Any:
    """CDR -> message, tolerating trailing alignment bytes.

    rclpy's ``serialize_message`` pads before empty sequences of 8-byte types (a JointState without
    velocities), which rosbags' strict size check rejects although every field decodes fine.
    """
    from rosbags.serde import SerdeError

    store = reader.typestore
    try:
        return store.deserialize_cdr(raw, typename)
    except SerdeError as exc:
        if "size mismatch" not in str(exc):
            raise DatasetError(f"cannot decode a {typename} message: {exc}") from exc
        msgdef = store.get_msgdef(typename)
        decode = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
        return decode(memoryview(raw)[4:], 0, msgdef.cls, store)[0]


def _open(path: Path):
    from rosbags.highlevel import AnyReader

    if not (path / "metadata.yaml").is_file():
        raise DatasetError(
            f"bag {path} has no metadata.yaml: its recorder was probably killed mid-episode. "
            f"Run `gen0 data repair {path}` to rebuild it from the flushed chunks"
        )
    try:
        reader = AnyReader([path])
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for broken bags
        raise DatasetError(f"cannot open bag {path}: {type(exc).__name__}: {exc}") from exc
    return reader


def _command_from(msg: Any, msgtype: str, topic: str, t: float, embodiment: Embodiment) -> _Command:
    if msgtype == TRAJECTORY_TYPE:
        if not msg.points:
            raise DatasetError(f"{topic}: a JointTrajectory without points at t={t:.3f}")
        offsets = np.array([stamp_seconds(p.time_from_start) for p in msg.points])
        positions = np.array([np.asarray(p.positions, dtype=np.float64) for p in msg.points])
        joints = tuple(msg.joint_names)
    else:
        controller = topic.strip("/").split("/")[0]
        try:
            joints = embodiment.controller(controller).joints
        except EmbodimentError as exc:
            raise DatasetError(
                f"{topic}: Float64MultiArray commands need a controller topic /<controller>/commands; {exc}"
            ) from exc
        positions = np.asarray(msg.data, dtype=np.float64)[None, :]
        offsets = np.zeros(1)
    if positions.ndim != 2 or positions.shape[1] != len(joints):
        raise DatasetError(f"{topic}: a command for joints {list(joints)} has {positions.shape[-1]} values per point")
    return _Command(t, joints, offsets, positions)


def _read_low_dim(reader, path: Path, config: BuildConfig) -> tuple[_BagContents, Embodiment]:
    contents = _BagContents()
    by_topic = {c.topic: c for c in reader.connections}
    if config.joint_states_topic not in by_topic:
        raise DatasetError(f"bag {path} has no {config.joint_states_topic} topic; it has {sorted(by_topic)}")
    cams = config.camera_topics or tuple(t for t, c in by_topic.items() if c.msgtype == IMAGE_TYPE)
    missing = [t for t in cams if t not in by_topic]
    if missing:
        raise DatasetError(f"bag {path} lacks camera topics {missing}; it has {sorted(by_topic)}")
    contents.camera_topics = {camera_name(t): t for t in sorted(cams)}
    if len(contents.camera_topics) != len(set(cams)):
        raise DatasetError(f"bag {path}: camera topics {sorted(cams)} give clashing camera names; pass --camera-topic")
    commands = config.command_topics or tuple(
        t for t, c in by_topic.items() if c.msgtype in (TRAJECTORY_TYPE, ARRAY_TYPE)
    )
    low_dim = [
        c
        for c in reader.connections
        if c.topic in (config.joint_states_topic, *commands) or c.msgtype in (EPISODE_INFO_TYPE, TASK_STATUS_TYPE)
    ]
    # Embodiment first (from the EpisodeInfo unless given), so Float64MultiArray topics can be resolved.
    for conn, _, raw in reader.messages(connections=[c for c in low_dim if c.msgtype == EPISODE_INFO_TYPE]):
        contents.episode_info = _deserialize(reader, raw, conn.msgtype)
    name = config.embodiment or getattr(contents.episode_info, "embodiment", "")
    if not name:
        raise DatasetError(f"bag {path} does not name its embodiment (no EpisodeInfo); pass --embodiment NAME")
    embodiment = load_embodiment(name)
    for conn, stamp, raw in reader.messages(connections=[c for c in low_dim if c.msgtype != EPISODE_INFO_TYPE]):
        t = stamp * SECONDS_PER_NANOSECOND  # bag log times are integer ns
        msg = _deserialize(reader, raw, conn.msgtype)
        if conn.topic == config.joint_states_topic:
            if len(msg.position) != len(msg.name):
                raise DatasetError(
                    f"{conn.topic}: a JointState with {len(msg.name)} names and {len(msg.position)} positions"
                )
            contents.states.add(t, msg.name, msg.position)
            contents.state_times.append(t)
        elif conn.msgtype == TASK_STATUS_TYPE:
            contents.task_status = msg
        elif conn.topic in commands:
            contents.commands.setdefault(conn.topic, []).append(
                _command_from(msg, conn.msgtype, conn.topic, t, embodiment)
            )
    for conn, stamp, _ in reader.messages(connections=[by_topic[t] for t in contents.camera_topics.values()]):
        contents.frame_times.setdefault(camera_name(conn.topic), []).append(stamp * SECONDS_PER_NANOSECOND)
    return contents, embodiment


def _decode_image(msg: Any, topic: str, size: tuple[int, int] | None) -> np.ndarray:
    try:
        rgb = image_to_rgb(msg)
    except ObservationError as exc:
        raise DatasetError(f"{topic}: {exc}") from exc
    return rgb if size is None else fit_image(rgb, *size)  # the one image path (gen0_policy/images.py)


def _latest_index(times: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Index of the latest sample at or before each step time (times sorted ascending)."""
    return np.searchsorted(times, steps, side="right") - 1


def read_bag(path: Path, config: BuildConfig | None = None) -> tuple[Episode, EpisodeQuality]:
    """One bag -> one Episode at ``config.fps`` and its quality report. Raises DatasetError if unusable."""
    config = config or BuildConfig()
    path = Path(path)
    reader = _open(path)
    try:
        contents, embodiment = _read_low_dim(reader, path, config)
        return _assemble(reader, path, config, contents, embodiment)
    finally:
        reader.close()


def _assemble(reader, path: Path, config: BuildConfig, contents: _BagContents, embodiment: Embodiment):
    quality = EpisodeQuality(source=str(path))
    names = embodiment.joint_names
    missing = [j for j in names if j not in contents.states.times]
    if missing:
        raise DatasetError(
            f"bag {path}: {config.joint_states_topic} never reports joints {missing} of {embodiment.name}; "
            f"it has {sorted(contents.states.times)}. Pass the right --embodiment"
        )
    if not contents.commands:
        raise DatasetError(
            f"bag {path} has no commands (JointTrajectory or Float64MultiArray topics): actions come from the "
            "commands sent to the controllers, so record those topics"
        )
    joint_times = {j: np.asarray(contents.states.times[j]) for j in names}
    joint_values = {j: np.asarray(contents.states.values[j], dtype=np.float64) for j in names}
    frame_times = {cam: np.asarray(ts) for cam, ts in contents.frame_times.items()}
    no_frames = [cam for cam in contents.camera_topics if cam not in frame_times]
    if no_frames:
        raise DatasetError(f"bag {path}: cameras {no_frames} have no frames")
    all_commands = [c for cmds in contents.commands.values() for c in cmds]
    first_command = min(c.time for c in all_commands)
    start = max([first_command, *(t[0] for t in joint_times.values()), *(t[0] for t in frame_times.values())])
    end = min([*(t[-1] for t in joint_times.values()), *(t[-1] for t in frame_times.values())])
    if end - start < 1.0 / config.fps:
        raise DatasetError(
            f"bag {path}: streams overlap for only {max(0.0, end - start):.3f} s; too short for an episode"
        )
    steps = start + np.arange(int(np.floor((end - start) * config.fps + 1e-9)) + 1) / config.fps
    origin = min(contents.state_times[0], first_command, *(t[0] for t in frame_times.values()))

    # quality of every stream, from log times
    quality.check_stream(StreamQuality.from_times(config.joint_states_topic, np.asarray(contents.state_times), origin))
    for cam, topic in contents.camera_topics.items():
        quality.check_stream(StreamQuality.from_times(topic, frame_times[cam], origin))
    for topic, cmds in contents.commands.items():
        quality.check_stream(StreamQuality.from_times(topic, np.array([c.time for c in cmds]), origin))
    rates = {s.topic: s.rate_hz for s in quality.streams}

    # states
    states = np.empty((len(steps), len(names)))
    worst = np.full(len(steps), -np.inf)
    for j, joint in enumerate(names):
        idx = _latest_index(joint_times[joint], steps)
        states[:, j] = joint_values[joint][idx]
        worst = np.maximum(worst, steps - joint_times[joint][idx])
    quality.check_sync(config.joint_states_topic, steps, steps - worst, rates[config.joint_states_topic])

    # actions: per joint, the command in force (joints not yet commanded hold their starting position)
    actions = np.tile(states[0], (len(steps), 1))
    commanded: set[str] = set()
    index = {j: i for i, j in enumerate(names)}
    for topic, cmds in contents.commands.items():
        unknown = sorted({j for c in cmds for j in c.joints} - set(names))
        if unknown:
            raise DatasetError(f"bag {path}: {topic} commands joints {unknown} that {embodiment.name} lacks")
        times = np.array([c.time for c in cmds])
        which = _latest_index(times, steps)
        for k in np.flatnonzero(which >= 0):
            cmd = cmds[which[k]]
            elapsed = steps[k] - cmd.time
            for jj, joint in enumerate(cmd.joints):
                actions[k, index[joint]] = np.interp(elapsed, cmd.offsets, cmd.positions[:, jj])
        commanded |= {j for c in cmds for j in c.joints}
    never = [j for j in names if j not in commanded]
    if never:
        quality.warnings.append(f"joints never commanded (their action holds the start position): {never}")

    if quality.count_nans("states", states) or quality.count_nans("actions", actions):
        quality.errors.append(f"NaN/inf values: {quality.nan_values}")

    # images: the latest frame at or before each step, decoded once per distinct frame used
    images: dict[str, np.ndarray] = {}
    wanted = {cam: _latest_index(frame_times[cam], steps) for cam in contents.camera_topics}
    by_topic = {c.topic: c for c in reader.connections}
    for cam, topic in contents.camera_topics.items():
        need = wanted[cam]
        quality.check_sync(topic, steps, frame_times[cam][need], rates[topic])
        out: np.ndarray | None = None
        positions = {int(i): np.flatnonzero(need == i) for i in np.unique(need)}
        for i, (conn, _, raw) in enumerate(reader.messages(connections=[by_topic[topic]])):
            if i not in positions:
                continue
            rgb = _decode_image(_deserialize(reader, raw, conn.msgtype), topic, config.image_size)
            if out is None:
                out = np.empty((len(steps), *rgb.shape), dtype=np.uint8)
            elif rgb.shape != out.shape[1:]:
                raise DatasetError(f"{topic}: frame size changed mid-episode ({rgb.shape} vs {out.shape[1:]})")
            out[positions[i]] = rgb
        images[cam] = out

    quality.steps, quality.duration_s = len(steps), float(steps[-1] - steps[0])
    info, status = contents.episode_info, contents.task_status
    if info is not None and not info.recording:
        success, success_source = bool(info.success), "operator"
    elif status is not None:
        success, success_source = bool(status.success), "task_status"
    else:
        success, success_source = False, "unknown"
        quality.warnings.append("success unknown (no final EpisodeInfo, no TaskStatus): counted as failed")
    instruction = (info.instruction if info is not None else "") or (status.instruction if status is not None else "")
    if not instruction:
        quality.warnings.append("no instruction recorded (EpisodeInfo or TaskStatus)")
    metadata: dict[str, Any] = {
        "bag": str(path),
        "success_source": success_source,
        "start_time_ns": int(start / SECONDS_PER_NANOSECOND),
    }
    if info is not None:
        metadata.update(episode_id=info.episode_id, operator=info.operator_name, tags=list(info.tags), notes=info.notes)
    episode = Episode(
        embodiment=embodiment.name,
        instruction=instruction,
        fps=config.fps,
        states=states,
        actions=actions,
        images=images,
        success=success,
        task=(info.task if info is not None else "") or (status.task if status is not None else ""),
        metadata=metadata,
    )
    return episode, quality
