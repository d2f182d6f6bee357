"""`gen0 demo` as a user runs it: the shipped checkpoint, the MuJoCo sim and the policy node as
processes, an episode through RunTask, its outcome in the terminal and its video on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_an_episode_says_how_it_ended_and_leaves_a_video(tmp_path: Path) -> None:
    import av

    videos = tmp_path / "videos"
    proc = subprocess.run(
        [sys.executable, "-m", "gen0_policy.cli", "demo", "--task", "reach", "--episodes", "1", "--timeout", "8",
         "--video-dir", str(videos)],
        capture_output=True, text=True, timeout=400, start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "policy running" in proc.stdout, proc.stdout
    assert "episode 1: '" in proc.stdout and " -> " in proc.stdout, proc.stdout
    (video,) = videos.glob("panda_reach_seed100_*.mp4")
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) >= 10 and frames[0].shape[1] == 2 * 320  # scene and wrist side by side
