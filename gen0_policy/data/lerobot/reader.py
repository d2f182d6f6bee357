"""Reading a LeRobot v3 folder (ours or LeRobot's own) back into :class:`Episode` s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen0_policy.data.episode import Episode
from gen0_policy.data.lerobot.codec import decode_spans
from gen0_policy.data.lerobot.layout import ACTION, CODEBASE_VERSION, DATA_PATH, IMAGE_PREFIX, STATE, VIDEO_PATH
from gen0_policy.data.stats import load_stats
from gen0_policy.errors import DatasetError


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
                for i, decoded in zip(members, decode_spans(path, spans, self.fps, image_size), strict=True):
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
        return decode_spans(path, [self._span(row, key)], self.fps, image_size, seek=True)[0]


def _fixed_list_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks()
    width = array.type.list_size if pa.types.is_fixed_size_list(array.type) else None
    if width is None:  # a variable-size list column (older writers): rows must still agree
        return np.asarray(array.to_pylist(), dtype=np.float32)
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)


def load_episodes(root: Path, image_size: tuple[int, int] | None = None) -> list[Episode]:
    """All episodes of a LeRobot v3 dataset, images decoded (and fitted to (width, height) if given, see images.py)."""
    return LeRobotDataset(root).episodes(image_size=image_size)
