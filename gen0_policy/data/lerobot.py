"""LeRobot v3 datasets: write :class:`Episode` s in the layout LeRobot 0.4 writes, and read them back.

Layout (see shared/reference/lerobot_v3_sample)::

    meta/info.json                              features, fps, robot_type, path templates
    meta/tasks.parquet                          instruction text -> task_index (pandas index column)
    meta/episodes/chunk-000/file-000.parquet    one row per episode: boundaries, video spans, stats
    meta/stats.json                             dataset stats (LeRobot format, also our normalization)
    data/chunk-000/file-000.parquet             one row per frame, many episodes per file
    videos/<key>/chunk-000/file-000.mp4         one H.264 stream per camera, episodes back to back

gen0 extras that LeRobot has no place for (success, task id, embodiment, free metadata) ride in
extra ``gen0/...`` columns of ``meta/episodes``; LeRobot keeps unknown columns and ignores them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen0_policy.data.episode import Episode
from gen0_policy.data.stats import (
    STAT_KEYS,
    Stats,
    aggregate_stats,
    compute_image_stats,
    compute_stats,
    load_stats,
    save_stats,
)
from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import DatasetError
from gen0_policy.images import fit_image

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
STATE, ACTION, IMAGE_PREFIX = "observation.state", "action", "observation.images."
INDEX_FEATURES = ("frame_index", "episode_index", "index", "task_index")
VIDEO_CODEC, PIX_FMT = "h264", "yuv420p"
GEN0_COLUMNS = ("gen0/success", "gen0/task", "gen0/embodiment", "gen0/metadata")


def _scalar_feature(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": [1], "names": None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _fps_value(fps: float) -> int | float:
    return int(fps) if float(fps).is_integer() else float(fps)


@dataclass
class _FileCursor:
    """Where the next episode goes for one stream (data or one camera): chunk, file, rows so far."""

    chunk: int = 0
    file: int = 0
    frames: int = 0  # frames already in the current file

    def advance(self) -> None:
        self.file += 1
        if self.file >= CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0
        self.frames = 0


class VideoFile:
    """One open MP4 receiving episodes back to back; pts count frames from the file's start."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int, gop: int) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, PIX_FMT
        self.stream.codec_context.time_base = 1 / Fraction(fps).limit_denominator(1001)
        # No B-frames: seeking to an episode start then decodes forward without reordering.
        self.stream.options = {"crf": str(crf), "g": str(gop), "bf": "0", "preset": "veryfast"}
        self.frames = 0
        self.bytes = 0  # encoded so far; the file on disk lags behind by the muxer's buffer

    def write(self, frames: np.ndarray) -> None:
        import av

        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = self.frames
            if i == 0:  # every episode starts on a keyframe, so reading one never decodes its neighbour
                frame.pict_type = av.video.frame.PictureType.I
            self._mux(self.stream.encode(frame))
            self.frames += 1

    def _mux(self, packets: list) -> None:
        self.bytes += sum(packet.size for packet in packets)
        self.container.mux(packets)

    def size_mb(self) -> float:
        return self.bytes / 2**20

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()


class LeRobotWriter:
    """Writes episodes of one embodiment into a new LeRobot v3 dataset folder.

    Use as a context manager; metadata is written on close (also after an error, for the episodes
    that were complete), ``meta/info.json`` last, so a folder with it is always a whole dataset.
    """

    def __init__(
        self,
        root: Path,
        embodiment: Embodiment,
        fps: float,
        *,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
        crf: int = 18,
    ) -> None:
        self.root = Path(root)
        if (self.root / "meta" / "info.json").exists():
            raise DatasetError(f"{self.root} already holds a dataset; choose a new output folder or delete it")
        if not (fps > 0 and math.isfinite(fps)):
            raise DatasetError(f"fps must be positive, got {fps}")
        self.embodiment, self.fps, self.crf = embodiment, float(fps), crf
        self.data_mb, self.video_mb = data_files_size_in_mb, video_files_size_in_mb
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, Stats]] = []
        self.cameras: dict[str, tuple[int, int]] | None = None  # cam -> (height, width), from episode 0
        self.total_frames = 0
        self._data_cursor = _FileCursor()
        self._data_writer: pq.ParquetWriter | None = None
        self._video_cursors: dict[str, _FileCursor] = {}
        self._videos: dict[str, VideoFile] = {}
        self._closed = False
        dof = embodiment.dof
        self._data_schema = pa.schema(
            [
                (STATE, pa.list_(pa.float32(), dof)),
                (ACTION, pa.list_(pa.float32(), dof)),
                ("timestamp", pa.float32()),
                *[(name, pa.int64()) for name in INDEX_FEATURES],
            ]
        )

    # -- public -------------------------------------------------------------------------------
    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and not self.episodes:
            self._close_files()
            return
        self.close()

    def add_episode(self, episode: Episode) -> int:
        """Append one episode; returns its episode_index. Invalid episodes raise before anything is written."""
        self._validate(episode)
        ep_index = len(self.episodes)
        task_index = self.tasks.setdefault(episode.instruction, len(self.tasks))
        n = len(episode)
        start = self.total_frames
        columns = {
            STATE: episode.states,
            ACTION: episode.actions,
            "timestamp": episode.timestamps,
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, ep_index, dtype=np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.full(n, task_index, dtype=np.int64),
        }
        row: dict[str, Any] = {"episode_index": ep_index, "tasks": [episode.instruction], "length": n}
        row.update(self._write_data(columns))
        row["dataset_from_index"], row["dataset_to_index"] = start, start + n
        for cam in sorted(episode.images):
            row.update(self._write_video(cam, episode.images[cam]))
        stats = {key: compute_stats(value) for key, value in columns.items()}
        stats.update({IMAGE_PREFIX + cam: compute_image_stats(frames) for cam, frames in episode.images.items()})
        row["_stats"] = stats
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        row["gen0/success"] = bool(episode.success)
        row["gen0/task"] = episode.task
        row["gen0/embodiment"] = episode.embodiment
        row["gen0/metadata"] = json.dumps(episode.metadata, default=_jsonable)
        self.episodes.append(row)
        self.episode_stats.append(stats)
        self.total_frames += n
        return ep_index

    def close(self) -> None:
        if self._closed:
            return
        self._close_files()
        if not self.episodes:
            raise DatasetError(f"no episodes were added to {self.root}; nothing was written")
        meta = self.root / "meta"
        meta.mkdir(parents=True, exist_ok=True)
        self._write_tasks(meta / "tasks.parquet")
        self._write_episodes(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0))
        save_stats(aggregate_stats(self.episode_stats), meta / "stats.json")
        (meta / "info.json").write_text(json.dumps(self._info(), indent=4))

    # -- internals ----------------------------------------------------------------------------
    def _validate(self, episode: Episode) -> None:
        if self._closed:
            raise DatasetError("this LeRobotWriter is closed; open a new one to add episodes")
        where = f"episode {len(self.episodes)} ({episode.instruction!r})"
        if len(episode) == 0:
            raise DatasetError(f"{where} has no steps")
        if episode.embodiment != self.embodiment.name:
            raise DatasetError(
                f"{where} is from embodiment {episode.embodiment!r} but this dataset is {self.embodiment.name!r}; "
                "write each embodiment to its own dataset"
            )
        if episode.states.shape[1] != self.embodiment.dof or episode.actions.shape[1] != self.embodiment.dof:
            raise DatasetError(
                f"{where}: states {episode.states.shape} / actions {episode.actions.shape} do not match the "
                f"{self.embodiment.dof} joints of {self.embodiment.name} {list(self.embodiment.joint_names)}"
            )
        if abs(episode.fps - self.fps) > 1e-6:
            raise DatasetError(f"{where} runs at {episode.fps} fps but the dataset is {self.fps} fps; resample it")
        for name, values in (("states", episode.states), ("actions", episode.actions)):
            bad = ~np.isfinite(values)
            if bad.any():
                t, j = np.argwhere(bad)[0]
                raise DatasetError(
                    f"{where}: {int(bad.sum())} NaN/inf values in {name} (first at step {t}, joint "
                    f"{self.embodiment.joint_names[j]}); fix or drop the episode"
                )
        cams = {cam: frames.shape[1:3] for cam, frames in episode.images.items()}
        if self.cameras is None:
            for cam, (h, w) in cams.items():
                if h % 2 or w % 2:
                    raise DatasetError(f"{where}: camera {cam} is {w}x{h}; {PIX_FMT} video needs even sizes")
            self.cameras = cams
        elif cams != self.cameras:
            raise DatasetError(
                f"{where} has cameras {cams} but the dataset has {self.cameras} (name: (height, width)); "
                "every episode needs the same cameras at the same size"
            )

    def _write_data(self, columns: dict[str, np.ndarray]) -> dict[str, int]:
        cursor = self._data_cursor
        if self._data_writer is not None and cursor.frames and self._file_mb(DATA_PATH, cursor) >= self.data_mb:
            self._data_writer.close()
            self._data_writer = None
            cursor.advance()
        if self._data_writer is None:
            path = self.root / DATA_PATH.format(chunk_index=cursor.chunk, file_index=cursor.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, self._data_schema)
        dof = self.embodiment.dof
        arrays = [
            pa.FixedSizeListArray.from_arrays(pa.array(columns[STATE].reshape(-1), pa.float32()), dof),
            pa.FixedSizeListArray.from_arrays(pa.array(columns[ACTION].reshape(-1), pa.float32()), dof),
            pa.array(columns["timestamp"], pa.float32()),
            *[pa.array(columns[name], pa.int64()) for name in INDEX_FEATURES],
        ]
        self._data_writer.write_table(pa.Table.from_arrays(arrays, schema=self._data_schema))
        cursor.frames += len(columns[STATE])
        return {"data/chunk_index": cursor.chunk, "data/file_index": cursor.file}

    def _file_mb(self, template: str, cursor: _FileCursor) -> float:
        path = self.root / template.format(chunk_index=cursor.chunk, file_index=cursor.file)
        return path.stat().st_size / 2**20 if path.exists() else 0.0

    def _write_video(self, cam: str, frames: np.ndarray) -> dict[str, Any]:
        key = IMAGE_PREFIX + cam
        cursor = self._video_cursors.setdefault(key, _FileCursor())
        video = self._videos.get(key)
        if video is not None and video.size_mb() >= self.video_mb:
            video.close()
            video = None
            cursor.advance()
        if video is None:
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=cursor.chunk, file_index=cursor.file)
            h, w = frames.shape[1:3]
            video = self._videos[key] = VideoFile(path, w, h, self.fps, self.crf, gop=max(1, round(self.fps)))
        first = video.frames
        try:
            video.write(frames)
        except Exception as exc:  # the encoder's own errors are not ours to name
            raise DatasetError(f"encoding camera {cam} into {video.path} failed: {exc}") from exc
        cursor.frames = video.frames
        return {
            f"videos/{key}/chunk_index": cursor.chunk,
            f"videos/{key}/file_index": cursor.file,
            f"videos/{key}/from_timestamp": first / self.fps,
            f"videos/{key}/to_timestamp": video.frames / self.fps,
        }

    def _close_files(self) -> None:
        self._closed = True
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        for video in self._videos.values():
            video.close()
        self._videos.clear()

    def _write_tasks(self, path: Path) -> None:
        """tasks.parquet as pandas writes a DataFrame indexed by task text (LeRobot reads it with pandas)."""
        tasks = sorted(self.tasks, key=self.tasks.get)
        pandas_meta = {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [
                {
                    "name": "task_index",
                    "field_name": "task_index",
                    "pandas_type": "int64",
                    "numpy_type": "int64",
                    "metadata": None,
                },
                {
                    "name": None,
                    "field_name": "__index_level_0__",
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": None,
                },
            ],
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3",
        }
        schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())]).with_metadata(
            {b"pandas": json.dumps(pandas_meta).encode()}
        )
        table = pa.table({"task_index": [self.tasks[t] for t in tasks], "__index_level_0__": tasks}, schema=schema)
        pq.write_table(table, path)

    def _write_episodes(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fields: list[pa.Field] = [
            pa.field("episode_index", pa.int64()),
            pa.field("tasks", pa.list_(pa.string())),
            pa.field("length", pa.int64()),
            pa.field("data/chunk_index", pa.int64()),
            pa.field("data/file_index", pa.int64()),
            pa.field("dataset_from_index", pa.int64()),
            pa.field("dataset_to_index", pa.int64()),
        ]
        for cam in sorted(self.cameras or {}):
            prefix = f"videos/{IMAGE_PREFIX}{cam}/"
            fields += [pa.field(prefix + "chunk_index", pa.int64()), pa.field(prefix + "file_index", pa.int64())]
            fields += [
                pa.field(prefix + "from_timestamp", pa.float64()),
                pa.field(prefix + "to_timestamp", pa.float64()),
            ]
        first_stats = self.episode_stats[0]
        stat_columns: list[tuple[str, str, str]] = []  # (column, feature, stat)
        for feature in [
            STATE,
            ACTION,
            *[IMAGE_PREFIX + c for c in sorted(self.cameras or {})],
            "timestamp",
            *INDEX_FEATURES,
        ]:
            for stat in STAT_KEYS:
                value = first_stats[feature][stat]
                if stat == "count" or (stat in ("min", "max") and np.issubdtype(value.dtype, np.integer)):
                    leaf = pa.int64()
                else:
                    leaf = pa.float64()
                typ = leaf
                for _ in range(np.ndim(value)):
                    typ = pa.list_(typ)
                fields.append(pa.field(f"stats/{feature}/{stat}", typ))
                stat_columns.append((f"stats/{feature}/{stat}", feature, stat))
        fields += [pa.field("meta/episodes/chunk_index", pa.int64()), pa.field("meta/episodes/file_index", pa.int64())]
        fields += [
            pa.field("gen0/success", pa.bool_()),
            pa.field("gen0/task", pa.string()),
            pa.field("gen0/embodiment", pa.string()),
            pa.field("gen0/metadata", pa.string()),
        ]
        rows = []
        for row in self.episodes:
            flat = {k: v for k, v in row.items() if k != "_stats"}
            for column, feature, stat in stat_columns:
                flat[column] = np.asarray(row["_stats"][feature][stat]).tolist()
            rows.append(flat)
        schema = pa.schema(fields)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)

    def _info(self) -> dict[str, Any]:
        names = list(self.embodiment.joint_names)
        dof = self.embodiment.dof
        features: dict[str, Any] = {
            STATE: {"dtype": "float32", "shape": [dof], "names": names},
            ACTION: {"dtype": "float32", "shape": [dof], "names": list(self.embodiment.action_names)},
        }
        for cam, (h, w) in sorted((self.cameras or {}).items()):
            features[IMAGE_PREFIX + cam] = {
                "dtype": "video",
                "shape": [h, w, 3],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": VIDEO_CODEC,
                    "video.pix_fmt": PIX_FMT,
                    "video.is_depth_map": False,
                    "video.fps": _fps_value(self.fps),
                    "video.channels": 3,
                    "has_audio": False,
                },
            }
        features["timestamp"] = _scalar_feature("float32")
        for name in INDEX_FEATURES:
            features[name] = _scalar_feature("int64")
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.embodiment.name,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": self.data_mb,
            "video_files_size_in_mb": self.video_mb,
            "fps": _fps_value(self.fps),
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": features,
        }


def is_dataset(path: Path) -> bool:
    """True if ``path`` is a LeRobot v3 dataset folder (it has ``meta/info.json``, written last)."""
    return (Path(path) / "meta" / "info.json").is_file()


class LeRobotDataset:
    """Reads a LeRobot v3 folder (ours or LeRobot's own) back into :class:`Episode` s."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DatasetError(
                f"{self.root} is not a LeRobot v3 dataset: {info_path} is missing "
                "(build one with `gen0 data build` or `gen0 sim collect`)"
            )
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{info_path} is not valid JSON: {exc}") from exc
        version = self.info.get("codebase_version")
        if version != CODEBASE_VERSION:
            raise DatasetError(
                f"{self.root} is LeRobot format {version!r}; only {CODEBASE_VERSION!r} is supported "
                "(convert older datasets with LeRobot's v2.1 -> v3.0 script)"
            )
        features = self.info.get("features", {})
        for key in (STATE, ACTION):
            if key not in features:
                raise DatasetError(f"{self.root}: feature {key!r} missing from info.json; found {sorted(features)}")
        self.fps = float(self.info["fps"])
        self.robot_type: str = self.info.get("robot_type") or ""
        self.joint_names: list[str] = list(features[STATE].get("names") or [])
        self.camera_keys = sorted(
            k for k, f in features.items() if k.startswith(IMAGE_PREFIX) and f["dtype"] == "video"
        )
        self.tasks: list[str] = self._read_tasks()
        self._episodes = self._read_episodes()
        self.stats = load_stats(self.root / "meta" / "stats.json") if (self.root / "meta/stats.json").exists() else {}
        self._data_cache: tuple[Path, pa.Table, dict[int, tuple[int, int]]] | None = None

    @property
    def camera_sizes(self) -> dict[str, tuple[int, int]]:
        """{camera: (width, height)} the frames were recorded at (features hold [height, width, channels])."""
        features = self.info["features"]
        return {
            key[len(IMAGE_PREFIX) :]: (int(features[key]["shape"][1]), int(features[key]["shape"][0]))
            for key in self.camera_keys
        }

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(row["length"] for row in self._episodes))

    def __len__(self) -> int:
        return self.num_episodes

    def __iter__(self) -> Iterator[Episode]:
        return (self.episode(i) for i in range(self.num_episodes))

    def episode_meta(self, index: int) -> dict[str, Any]:
        """The episode's ``meta/episodes`` row without the per-episode stats."""
        self._check_index(index)
        return {k: v for k, v in self._episodes[index].items() if not k.startswith("stats/")}

    def episode(self, index: int, image_size: tuple[int, int] | None = None) -> Episode:
        """Episode ``index`` with decoded camera frames, resized to ``image_size`` = (width, height) if given."""
        self._check_index(index)
        row = self._episodes[index]
        self._data_rows(row)  # low-dimensional data first: its errors are cheaper to find than a video's
        images = {key[len(IMAGE_PREFIX) :]: self._decode(row, key, image_size) for key in self.camera_keys}
        return self._build(row, images)

    def episodes(self, image_size: tuple[int, int] | None = None) -> list[Episode]:
        """All episodes, decoding each video file once front to back (much faster than seeking per episode)."""
        frames: dict[int, dict[str, np.ndarray]] = {i: {} for i in range(self.num_episodes)}
        for key in self.camera_keys:
            by_file: dict[tuple[int, int], list[int]] = {}
            for i, row in enumerate(self._episodes):
                by_file.setdefault((row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]), []).append(i)
            for (chunk, file), members in by_file.items():
                path = self._video_path(key, chunk, file)
                spans = [self._span(self._episodes[i], key) for i in members]
                for i, decoded in zip(members, _decode_spans(path, spans, self.fps, image_size), strict=True):
                    frames[i][key[len(IMAGE_PREFIX) :]] = decoded
        return [self._build(self._episodes[i], frames[i]) for i in range(self.num_episodes)]

    # -- internals ----------------------------------------------------------------------------
    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_episodes:
            raise DatasetError(f"episode {index} out of range; {self.root} has {self.num_episodes} episodes")

    def _read_tasks(self) -> list[str]:
        path = self.root / "meta" / "tasks.parquet"
        table = self._read_parquet(path)
        names = [n for n in table.column_names if n != "task_index"]
        if "task_index" not in table.column_names or not names:
            raise DatasetError(f"{path} must hold task_index and the task text; found columns {table.column_names}")
        text_column = "task" if "task" in names else names[0]
        order = np.argsort(table.column("task_index").to_numpy())
        return [table.column(text_column).to_pylist()[i] for i in order]

    def _read_episodes(self) -> list[dict[str, Any]]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"{self.root}: no meta/episodes/chunk-*/file-*.parquet files; the dataset is incomplete")
        rows: list[dict[str, Any]] = []
        for path in files:
            rows += self._read_parquet(path).to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        if [r["episode_index"] for r in rows] != list(range(len(rows))):
            raise DatasetError(f"{self.root}: episode indices in meta/episodes are not 0..{len(rows) - 1}")
        return rows

    @staticmethod
    def _read_parquet(path: Path) -> pa.Table:
        if not path.is_file():
            raise DatasetError(f"missing dataset file {path}; the dataset is incomplete or was moved partially")
        try:
            return pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc

    def _data_rows(self, row: dict[str, Any]) -> pa.Table:
        path = self.root / self.info.get("data_path", DATA_PATH).format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if self._data_cache is None or self._data_cache[0] != path:
            table = self._read_parquet(path)
            episode_index = table.column("episode_index").to_numpy()
            ids, starts, counts = np.unique(episode_index, return_index=True, return_counts=True)
            spans = {int(e): (int(s), int(c)) for e, s, c in zip(ids, starts, counts, strict=True)}
            self._data_cache = (path, table, spans)
        _, table, spans = self._data_cache
        ep = row["episode_index"]
        if ep not in spans:
            raise DatasetError(f"{path} has no rows for episode {ep}; the dataset is inconsistent")
        start, count = spans[ep]
        if count != row["length"]:
            raise DatasetError(f"{path}: episode {ep} has {count} rows but meta/episodes says {row['length']}")
        return table.slice(start, count)

    def _build(self, row: dict[str, Any], images: dict[str, np.ndarray]) -> Episode:
        rows = self._data_rows(row)
        states = _fixed_list_to_numpy(rows.column(STATE))
        actions = _fixed_list_to_numpy(rows.column(ACTION))
        tasks = row.get("tasks") or []
        instruction = tasks[0] if tasks else self.tasks[int(rows.column("task_index")[0].as_py())]
        metadata = json.loads(row["gen0/metadata"]) if row.get("gen0/metadata") else {}
        metadata.setdefault("episode_index", row["episode_index"])
        return Episode(
            embodiment=row.get("gen0/embodiment") or self.robot_type,
            instruction=instruction,
            fps=self.fps,
            states=states,
            actions=actions,
            images=images,
            success=bool(row["gen0/success"]) if row.get("gen0/success") is not None else True,
            task=row.get("gen0/task") or "",
            metadata=metadata,
        )

    def _video_path(self, key: str, chunk: int, file: int) -> Path:
        template = self.info.get("video_path") or VIDEO_PATH
        path = self.root / template.format(video_key=key, chunk_index=chunk, file_index=file)
        if not path.is_file():
            raise DatasetError(f"missing video file {path}; the dataset is incomplete or was moved partially")
        return path

    def _span(self, row: dict[str, Any], key: str) -> tuple[float, int]:
        return float(row[f"videos/{key}/from_timestamp"]), int(row["length"])

    def _decode(self, row: dict[str, Any], key: str, image_size: tuple[int, int] | None) -> np.ndarray:
        path = self._video_path(key, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
        return _decode_spans(path, [self._span(row, key)], self.fps, image_size, seek=True)[0]


def _fixed_list_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks()
    width = array.type.list_size if pa.types.is_fixed_size_list(array.type) else None
    if width is None:  # a variable-size list column (older writers): rows must still agree
        return np.asarray(array.to_pylist(), dtype=np.float32)
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)


def _decode_spans(
    path: Path,
    spans: list[tuple[float, int]],
    fps: float,
    image_size: tuple[int, int] | None,
    seek: bool = False,
) -> list[np.ndarray]:
    """Decode frames [from_timestamp, from_timestamp + length / fps) of each span, in one pass over the file."""
    import av

    firsts = [round(start * fps) for start, _ in spans]
    out: list[np.ndarray | None] = [None] * len(spans)
    filled = [0] * len(spans)
    order = sorted(range(len(spans)), key=lambda i: firsts[i])
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seek and firsts[order[0]] > 0:
                container.seek(int(spans[order[0]][0] / stream.time_base), stream=stream, backward=True)
            k = 0  # position in `order` of the first span not yet complete
            for frame in container.decode(stream):
                index = round(frame.time * fps)
                while k < len(order) and index >= firsts[order[k]] + spans[order[k]][1]:
                    k += 1
                if k == len(order):
                    break
                i = order[k]
                if index < firsts[i]:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if out[i] is None:
                    out[i] = np.empty((spans[i][1], *rgb.shape), dtype=np.uint8)
                out[i][index - firsts[i]] = rgb
                filled[i] += 1
                if image_size is not None and filled[i] == spans[i][1]:
                    out[i] = fit_image(out[i], *image_size)  # the one image path, a whole episode at once
    except av.error.FFmpegError as exc:
        raise DatasetError(f"cannot decode video {path}: {exc}") from exc
    for i, (start, length) in enumerate(spans):
        if filled[i] != length:
            raise DatasetError(
                f"video {path} holds {filled[i]} of the {length} frames expected from t={start:.3f} s; "
                "the video is truncated or its timestamps do not match meta/episodes"
            )
    return [o for o in out if o is not None]


def load_episodes(root: Path, image_size: tuple[int, int] | None = None) -> list[Episode]:
    """All episodes of a LeRobot v3 dataset, images decoded (and fitted to (width, height) if given, see images.py)."""
    return LeRobotDataset(root).episodes(image_size=image_size)
