"""A separate process that speaks every kind of gen0_msgs interface, so a test in another process
can prove messages, services and actions cross a real DDS graph.

- echoes gen0_msgs/PolicyStatus from /peer/status_in to /peer/status_out (instruction upper-cased)
- serves gen0_msgs/srv/LoadCheckpoint on /peer/load_checkpoint (accepts paths ending in /ckpt)
- serves gen0_msgs/action/PostTrain on /peer/post_train (feedback per step, result at the end)
"""

import os
import sys
import time

import rclpy
from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gen0_msgs.action import PostTrain
from gen0_msgs.msg import PolicyStatus
from gen0_msgs.srv import LoadCheckpoint


class Peer(Node):
    def __init__(self) -> None:
        super().__init__("gen0_msgs_peer")
        self.out = self.create_publisher(PolicyStatus, "/peer/status_out", 10)
        self.create_subscription(PolicyStatus, "/peer/status_in", self.echo, 10)
        self.create_service(LoadCheckpoint, "/peer/load_checkpoint", self.load)
        self.action = ActionServer(self, PostTrain, "/peer/post_train", self.train)

    def echo(self, msg: PolicyStatus) -> None:
        msg.instruction = msg.instruction.upper()
        self.out.publish(msg)

    def load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response) -> LoadCheckpoint.Response:
        response.success = request.path.endswith("/ckpt")
        response.message = "loaded" if response.success else f"no checkpoint at {request.path}"
        response.checkpoint_id = os.path.basename(os.path.dirname(request.path)) if response.success else ""
        return response

    def train(self, goal_handle) -> PostTrain.Result:
        goal = goal_handle.request
        for step in range(1, goal.steps + 1):
            feedback = PostTrain.Feedback(phase="training", step=step, total_steps=goal.steps)
            feedback.training_loss = 1.0 / step
            goal_handle.publish_feedback(feedback)
            time.sleep(0.05)
        goal_handle.succeed()
        return PostTrain.Result(
            success=True,
            checkpoint_path=f"{goal.output_dir}/step_{goal.steps}",
            steps_completed=goal.steps,
            validation_error_before=0.5,
            validation_error_after=0.25,
        )


def main() -> None:
    rclpy.init()
    node = Peer()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    print("peer ready", flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
