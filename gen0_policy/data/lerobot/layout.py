"""The LeRobot v3 folder layout: path templates, feature names and what marks a whole dataset."""

from __future__ import annotations

from pathlib import Path

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
STATE, ACTION, IMAGE_PREFIX = "observation.state", "action", "observation.images."
INDEX_FEATURES = ("frame_index", "episode_index", "index", "task_index")
VIDEO_CODEC, PIX_FMT = "h264", "yuv420p"
GEN0_COLUMNS = ("gen0/success", "gen0/task", "gen0/embodiment", "gen0/metadata")


def is_dataset(path: Path) -> bool:
    """True if ``path`` is a LeRobot v3 dataset folder (it has ``meta/info.json``, written last)."""
    return (Path(path) / "meta" / "info.json").is_file()
