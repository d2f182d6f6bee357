"""gen0_msgs across two real processes: a topic, a service and an action with feedback."""

from __future__ import annotations

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from conftest import REPO, wait_until
from gen0_msgs.action import PostTrain
from gen0_msgs.msg import PolicyStatus
from gen0_msgs.srv import LoadCheckpoint
from gen0_policy.ros.action_client import ThreadSafeActionClient
from spinning import Spinner

pytestmark = pytest.mark.ros


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("msgs_roundtrip_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = Spinner(executor).start()
    yield node
    spinner.stop()
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_topic_service_and_action_cross_processes(node, processes):
    peer = processes.python(str(REPO / "test" / "peers" / "msgs_peer.py"), name="peer")

    received: list[PolicyStatus] = []
    node.create_subscription(PolicyStatus, "/peer/status_out", received.append, 10)
    pub = node.create_publisher(PolicyStatus, "/peer/status_in", 10)
    status = PolicyStatus(state=PolicyStatus.STATE_RUNNING, instruction="stack the cubes", uncertainty=0.125)
    status.embodiment = "panda"

    def echoed():
        pub.publish(status)
        return received

    wait_until(echoed, timeout=30, interval=0.2, what=f"echoed PolicyStatus (peer log: {processes.output(peer)})")
    msg = received[0]
    assert msg.state == PolicyStatus.STATE_RUNNING
    assert msg.instruction == "STACK THE CUBES"
    assert msg.uncertainty == pytest.approx(0.125)
    assert msg.embodiment == "panda"

    client = node.create_client(LoadCheckpoint, "/peer/load_checkpoint")
    assert client.wait_for_service(timeout_sec=20)
    ok = client.call(LoadCheckpoint.Request(path="/runs/panda_v2/ckpt"), timeout_sec=20)
    assert ok.success and ok.checkpoint_id == "panda_v2"
    bad = client.call(LoadCheckpoint.Request(path="/nowhere"), timeout_sec=20)
    assert not bad.success and "/nowhere" in bad.message

    action = ThreadSafeActionClient(node, PostTrain, "/peer/post_train")
    assert action.wait_for_server(timeout_sec=20)
    feedback: list[PostTrain.Feedback] = []
    goal = PostTrain.Goal(base_checkpoint="base", steps=4, output_dir="/tmp/out", datasets=["bag_0"])
    send = action.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback))
    handle = wait_until(lambda: send.done() and send.result(), timeout=20, what="goal acceptance")
    assert handle.accepted
    result_future = handle.get_result_async()
    result = wait_until(lambda: result_future.done() and result_future.result(), timeout=20, what="action result")
    assert result.result.success
    assert result.result.checkpoint_path == "/tmp/out/step_4"
    assert result.result.validation_error_after < result.result.validation_error_before
    assert [f.step for f in feedback] == [1, 2, 3, 4]
    assert feedback[-1].training_loss == pytest.approx(0.25)
