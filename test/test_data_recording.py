"""The recorder's ROS-free core: episode bags from serialized bytes, types from installed .msg files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from gen0_policy.data.episode_recorder import EpisodeRecorder
from gen0_policy.data.recording import EpisodeBag, RecordingError, offered_qos, subscription_qos, typestore_for


def test_types_come_from_installed_msg_files() -> None:
    store = typestore_for(["gen0_msgs/msg/TaskStatus", "gen0_msgs/msg/EpisodeInfo"])
    assert "gen0_msgs/msg/TaskStatus" in store.fielddefs and "std_msgs/msg/Header" in store.fielddefs
    with pytest.raises(RecordingError, match=r"no_pkg/msg/Nope is unknown.*source the workspace"):
        typestore_for(["no_pkg/msg/Nope"])


def test_bag_round_trip_and_misuse(tmp_path: Path) -> None:
    store = typestore_for(["gen0_msgs/msg/TaskStatus"])
    status = store.types["gen0_msgs/msg/TaskStatus"]
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id=""
    )
    bag = EpisodeBag(tmp_path / "ep", store, flush_period_s=0.05, custom_data={"gen0.test": "1"})
    bag.add_topic("/task_status", "gen0_msgs/msg/TaskStatus", [offered_qos(reliable=True)])
    with pytest.raises(RecordingError, match="call add_topic first"):
        bag.write("/other", b"", 0)
    for i in range(20):
        msg = status(
            header=header, task="reach", instruction="go", seed=i, episode=0, success=i == 19, elapsed=0.1 * i,
            workspace_lower=np.zeros(0), workspace_upper=np.zeros(0),
        )  # fmt: skip
        assert bag.write("/task_status", store.serialize_cdr(msg, "gen0_msgs/msg/TaskStatus"), 1_000 + i)
    stats = bag.close({"gen0.episode": "{}"})
    assert stats.message_count == 20 and stats.per_topic == {"/task_status": 20} and not stats.error
    assert not bag.write("/task_status", b"late", 5_000), "a closed bag accepts nothing"
    meta = yaml.safe_load((tmp_path / "ep" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"] == {"gen0.test": "1", "gen0.episode": "{}"}
    assert (
        meta["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"][0]["reliability"] == "reliable"
    )
    with AnyReader([tmp_path / "ep"]) as reader:  # rosbags reads it back
        seeds = [reader.deserialize(raw, c.msgtype).seed for c, _, raw in reader.messages()]
    assert seeds == list(range(20))
    with (tmp_path / "ep" / "ep.mcap").open("rb") as f:  # and so does the independent mcap reader
        decoded = [m for _, _, _, m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert decoded[-1].success and decoded[-1].task == "reach"
    with pytest.raises(RecordingError, match="exists already"):
        EpisodeBag(tmp_path / "ep", store)

    discarded = EpisodeBag(tmp_path / "gone", store)
    discarded.add_topic("/task_status", "gen0_msgs/msg/TaskStatus")
    discarded.discard()
    assert not (tmp_path / "gone").exists()


FILE_LIMIT = r"""
import resource, signal, sys, time
from pathlib import Path
from gen0_policy.data.recording import EpisodeBag, typestore_for
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
errors = []
bag = EpisodeBag(Path(sys.argv[1]), typestore_for([]), flush_period_s=0.01, on_error=errors.append)
bag.add_topic("/blob", "std_msgs/msg/String")
store = bag.typestore
payload = store.serialize_cdr(store.types["std_msgs/msg/String"](data="x" * 20_000), "std_msgs/msg/String")
accepted = 0
for i in range(100):
    accepted += bag.write("/blob", payload, i)
    time.sleep(0.005)
stats = bag.close()
print(len(errors), accepted, stats.message_count, stats.error)
"""


def test_write_error_is_latched_not_fatal(tmp_path: Path) -> None:
    """A file-size limit (like a full disk) stops accepting messages and says why; the process lives on."""
    done = subprocess.run([sys.executable, "-c", FILE_LIMIT, str(tmp_path / "ep")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    errors, accepted, written, error = done.stdout.split(maxsplit=3)
    assert errors == "1" and "file size limit reached" in error
    assert 0 < int(written) <= int(accepted) < 100
    assert not (tmp_path / "ep" / "metadata.yaml").exists()  # left as after a crash: `gen0 data repair` applies


def test_episode_recorder_rules(tmp_path: Path) -> None:
    clock = iter(range(1_000_000_000, 10**12, 10_000_000))  # 10 ms per reading
    recorder = EpisodeRecorder(tmp_path / "bags", embodiment="panda", flush_period_s=0.05, clock_ns=lambda: next(clock))
    store = recorder.typestore
    string = store.types["std_msgs/msg/String"]
    recorder.add_topic("/note", "std_msgs/msg/String", offered_qos(True))
    recorder.write("/note", store.serialize_cdr(string(data="before"), "std_msgs/msg/String"))  # no episode: dropped

    answer = recorder.stop(True)
    assert not answer.success and "no episode is recording" in answer.message
    started = recorder.start("stack the cups", "stack", "ada", ["demo"])
    assert started.success and recorder.recording
    again = recorder.start("other")
    assert (
        not again.success and "already recording" in again.message and again.meta.episode_id == started.meta.episode_id
    )
    for i in range(5):
        recorder.write("/note", store.serialize_cdr(string(data=f"n{i}"), "std_msgs/msg/String"))
    stopped = recorder.stop(True, "fine")
    assert stopped.success and stopped.meta.message_count == 7  # 5 notes + EpisodeInfo at start and at stop

    with AnyReader([Path(stopped.meta.bag_path)]) as reader:  # strict rosbags decoding of everything
        messages = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]
    assert [m.data for t, m in messages if t == "/note"] == [f"n{i}" for i in range(5)]
    infos = [m for t, m in messages if t == "/episode_info"]
    assert infos[0].recording and infos[0].instruction == "stack the cups" and list(infos[0].tags) == ["demo"]
    assert not infos[1].recording and infos[1].success and infos[1].notes == "fine" and infos[1].embodiment == "panda"
    assert infos[1].stop_time.sec * 10**9 + infos[1].stop_time.nanosec > infos[0].start_time.sec * 10**9
    # The final EpisodeInfo's count is the bag's (metadata.yaml's), itself included: it was one short.
    metadata = yaml.safe_load((Path(stopped.meta.bag_path) / "metadata.yaml").read_text())
    assert infos[1].message_count == metadata["rosbag2_bagfile_information"]["message_count"] == 7
    assert infos[0].message_count == 1

    discarded = Path(recorder.start("throw away").meta.bag_path)
    assert discarded.is_dir() and recorder.stop(False, discard=True).success and not discarded.exists()
    recorder.start("interrupted")
    recorder.shutdown()  # the node is stopping: the episode is closed, not lost
    assert not recorder.recording


def test_subscription_qos_waits_for_publishers_and_serves_them_all() -> None:
    """all() over a not-yet-discovered publisher list is True: the recorder subscribed RELIABLE and then
    never received a best-effort camera's frames. No publisher: no choice yet."""
    assert subscription_qos([]) is None
    assert subscription_qos([(True, True)]) == (True, True)
    assert subscription_qos([(True, False), (False, False)]) == (False, False)
