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

One module per side of the format: ``layout`` (paths and feature names), ``codec`` (the MP4 files),
``writer`` (:class:`LeRobotWriter`) and ``reader`` (:class:`LeRobotDataset`).
"""

from gen0_policy.data.lerobot.codec import VideoFile, decode_spans
from gen0_policy.data.lerobot.layout import ACTION, IMAGE_PREFIX, STATE, is_dataset
from gen0_policy.data.lerobot.reader import LeRobotDataset, load_episodes
from gen0_policy.data.lerobot.writer import LeRobotWriter

# The layout's constants live in gen0_policy.data.lerobot.layout.
__all__ = [
    "ACTION", "IMAGE_PREFIX", "STATE", "LeRobotDataset", "LeRobotWriter", "VideoFile", "decode_spans", "is_dataset",
    "load_episodes",
]  # fmt: skip
