"""gen0_posttrain_node in a real process, goals sent from this process over real DDS: feedback and a
result with a real new checkpoint that the real policy node hot-swaps to; a busy node answers a
second goal at once; cancel keeps the last good checkpoint; bad data aborts with the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from test_train_posttrain import make_base, make_dataset

from conftest import wait_until
from gen0_msgs.action import PostTrain
from gen0_msgs.msg import PolicyStatus
from gen0_policy.model.checkpoint import load_policy
from gen0_policy.ros.action_client import ThreadSafeActionClient
from spinning import Spinner

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

ACTION = "/gen0_posttrain/post_train"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("posttrain_node_assets")
    corrupt = make_dataset(root / "corrupt", episodes=2)
    parquet = next((corrupt / "data").rglob("*.parquet"))
    parquet.write_bytes(parquet.read_bytes()[:200])
    return {"dataset": make_dataset(root / "dataset"), "base": make_base(root / "base"), "corrupt": corrupt}


class Client:
    """This process's action client (own context, executor thread)."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("posttrain_client", context=self.context)
        self.action = ThreadSafeActionClient(self.node, PostTrain, ACTION)
        self.statuses: list[PolicyStatus] = []
        self.node.create_subscription(PolicyStatus, "/gen0_policy/status", self.statuses.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.spinner = Spinner(self.executor).start()
        assert self.action.wait_for_server(timeout_sec=60), f"no action server on {ACTION}"
        self._warm_up()

    def _warm_up(self, attempts: int = 10) -> None:
        """Send a goal that aborts at once (no such dataset) until its acceptance arrives: FastDDS can drop
        the answer to a request sent before the server discovered this client (ros2/rmw_fastrtps#842); a
        CI run lost the first goal's acceptance right after wait_for_server."""
        for _ in range(attempts):
            future = self.action.send_goal_async(PostTrain.Goal(datasets=["/nonexistent/gen0-warm-up"]))
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and not (future.done() and future.result()):
                time.sleep(0.02)
            if future.done() and future.result():
                self.result(future.result(), timeout=60)  # answered, and over before the test's own goals
                return
        raise AssertionError(f"no answer from {ACTION} in {attempts} goals")

    def send(self, goal: PostTrain.Goal) -> tuple[object, list[PostTrain.Feedback]]:
        feedback: list[PostTrain.Feedback] = []
        future = self.action.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
        handle = wait_until(lambda: future.done() and future.result(), timeout=30, what="goal acceptance")
        assert handle.accepted
        return handle, feedback

    def result(self, handle, timeout: float = 180.0):
        future = handle.get_result_async()
        wait_until(future.done, timeout=timeout, what="the goal's result")
        return future.result().status, future.result().result

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def connect():
    """connect() -> a Client, once the nodes it talks to are starting; closed after the test."""
    made: list[Client] = []
    yield lambda: made.append(Client()) or made[-1]
    for c in made:
        c.close()


def start_node(processes, tmp_path: Path) -> None:
    processes.python(
        "-m",
        "gen0_policy.ros.posttrain_node",
        "--ros-args",
        "--params-file",
        "config/posttrain_node.yaml",
        "-p",
        f"workspace:={tmp_path / 'workspace'}",
        "-p",
        "threads:=1",
        "-p",
        "cancel_grace:=60.0",
        "-p",
        "service_wait:=30.0",
        name="posttrain",
    )


def goal(assets, **fields) -> PostTrain.Goal:
    base = dict(
        base_checkpoint=str(assets["base"]),
        datasets=[str(assets["dataset"])],
        steps=4,
        batch_size=2,
        learning_rate=1e-3,
        validation_fraction=0.25,
    )
    return PostTrain.Goal(**{**base, **fields})


def test_goal_feedback_result_busy_and_hot_swap(processes, tmp_path: Path, assets, connect) -> None:
    processes.python(
        "-m",
        "gen0_policy.ros.policy_node",
        "--ros-args",
        "-p",
        f"checkpoint:={assets['base']}",
        "-p",
        "embodiment:=panda",
        "-p",
        "autostart:=true",
        name="policy",
    )
    start_node(processes, tmp_path)
    client = connect()
    wait_until(lambda: client.statuses and client.statuses[-1].checkpoint_id, timeout=60, what="the policy node")
    old_id = client.statuses[-1].checkpoint_id
    out = tmp_path / "run"
    first, feedback = client.send(goal(assets, steps=12, output_dir=str(out), load_into_policy=True))
    wait_until(lambda: any(f.phase == "training" for f in feedback), timeout=120, what="training feedback")

    # Still training, the node answers a second goal at once: rejected, not queued, and says why.
    began = time.monotonic()
    second, _ = client.send(goal(assets, output_dir=str(tmp_path / "second")))
    status, result = client.result(second, timeout=30)
    answered = time.monotonic() - began
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert "rejected, not queued" in result.message and "still running" in result.message
    assert not first.get_result_async().done(), "the first goal must still be training for this check to mean anything"
    assert answered < 10, f"the node took {answered:.1f} s to answer while training"

    status, result = client.result(first)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.success and result.steps_completed == 12 and result.duration > 0
    assert Path(result.checkpoint_path).parent == out
    files = load_policy(result.checkpoint_path)
    assert files.meta["step"] == 12
    assert result.validation_error_before > 0 and result.validation_error_after > 0
    phases = [f.phase for f in feedback]
    assert phases[0] == "preparing data" and "training" in phases and phases[-1] == "loading into policy"
    steps = [f.step for f in feedback if f.phase == "training" and f.step > 0]
    assert steps == sorted(steps) and all(f.total_steps == 12 for f in feedback)
    assert any(f.training_loss > 0 and f.eta >= 0 for f in feedback if f.step > 0)
    # The policy node loaded the new checkpoint (it swaps at the new model's first chunk; the runtime's part).
    new_id = files.meta["checkpoint_id"]
    assert new_id != old_id and f"/gen0_policy loaded {new_id}" in result.message


def test_cancel_keeps_last_good_checkpoint_and_bad_data_aborts(processes, tmp_path: Path, assets, connect) -> None:
    start_node(processes, tmp_path)
    client = connect()
    # Bad data: a missing folder is caught before any process starts; a corrupt dataset by the trainer.
    handle, _ = client.send(goal(assets, datasets=[str(tmp_path / "missing")]))
    status, result = client.result(handle, timeout=30)
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert "no such file or folder" in result.message and "missing" in result.message
    handle, _ = client.send(goal(assets, datasets=[str(assets["corrupt"])], load_into_policy=True))
    status, result = client.result(handle)
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert "bad_data" in result.message and "cannot read" in result.message and "file-000.parquet" in result.message
    assert result.checkpoint_path == ""
    handle, _ = client.send(goal(assets, freeze=["wings"]))
    status, result = client.result(handle, timeout=30)
    assert status == GoalStatus.STATUS_ABORTED and "cannot freeze ['wings']" in result.message

    # Cancel mid-training: stopped after the current step, that step saved as the last good checkpoint.
    handle, feedback = client.send(goal(assets, steps=100000))
    wait_until(lambda: any(f.step >= 2 for f in feedback), timeout=120, what="two training steps")
    cancel = handle.cancel_goal_async()
    wait_until(cancel.done, timeout=30, what="the cancel answer")
    status, result = client.result(handle, timeout=90)
    assert status == GoalStatus.STATUS_CANCELED and not result.success
    assert 2 <= result.steps_completed < 100000
    assert "last good checkpoint" in result.message
    assert load_policy(result.checkpoint_path).meta["step"] == result.steps_completed
    assert Path(result.checkpoint_path).is_relative_to(tmp_path / "workspace")
