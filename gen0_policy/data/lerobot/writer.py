"""Writing :class:`Episode` s into a new LeRobot v3 folder, in the layout LeRobot 0.4 writes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen0_policy.data.episode import Episode
from gen0_policy.data.lerobot.codec import VideoFile
from gen0_policy.data.lerobot.layout import (
    ACTION,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    IMAGE_PREFIX,
    INDEX_FEATURES,
    PIX_FMT,
    STATE,
    VIDEO_CODEC,
    VIDEO_PATH,
)
from gen0_policy.data.stats import STAT_KEYS, Stats, aggregate_stats, compute_image_stats, compute_stats, save_stats
from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import DatasetError


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
