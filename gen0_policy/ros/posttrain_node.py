"""gen0_posttrain_node: post-training as a ROS 2 action (gen0_msgs/action/PostTrain on ~/post_train).

Each goal becomes a :class:`~gen0_policy.train.posttrain.PostTrainJob` run in a child process
(:class:`~gen0_policy.train.posttrain_runner.PostTrainProcess`), so this node stays responsive and
the running policy is never touched. One goal at a time: a goal arriving while one runs is
aborted at once with a message naming the running goal (rejected, not queued). On success it can
ask the policy node (``<policy_node>/load_checkpoint``) to hot-swap to the new checkpoint.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from pathlib import Path

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.client import Client
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from gen0_msgs.action import PostTrain
from gen0_msgs.srv import LoadCheckpoint
from gen0_policy.errors import Gen0Error
from gen0_policy.ros.spin import init, spin
from gen0_policy.train.config import TrainConfig
from gen0_policy.train.posttrain import PostTrainJob
from gen0_policy.train.posttrain_runner import PostTrainOutcome, PostTrainProcess

PARAMETERS = {  # name: default (units and meaning in config/posttrain_node.yaml)
    "workspace": "~/gen0_posttrain",
    "default_policy_node": "/gen0_policy",
    "scratch_preset": TrainConfig.preset,
    "device": TrainConfig.device,
    "threads": TrainConfig.threads,
    "cancel_grace": 30.0,
    "service_wait": 5.0,
    "load_timeout": 120.0,
    "feedback_period": 0.2,
}


class PostTrainNode(Node):
    def __init__(self) -> None:
        super().__init__("gen0_posttrain")
        self.p = {name: self.declare_parameter(name, default).value for name, default in PARAMETERS.items()}
        self._slot = threading.Lock()
        self._running: tuple[str, PostTrainProcess | None] = ("", None)  # goal id, process
        self._group = ReentrantCallbackGroup()
        self._load_clients: dict[str, Client] = {}  # service name -> client, kept (see _load_into_policy)
        ActionServer(
            self,
            PostTrain,
            "~/post_train",
            execute_callback=self._execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT,  # busy goals get an explained abort instead
            cancel_callback=lambda goal: CancelResponse.ACCEPT,
            callback_group=self._group,
        )
        self.get_logger().info(f"post-training goals on {self.resolve_action_name()}; runs in {self.workspace}")

    @property
    def workspace(self) -> Path:
        return Path(self.p["workspace"]).expanduser()

    def resolve_action_name(self) -> str:
        return f"{self.get_fully_qualified_name()}/post_train"

    # ------------------------------------------------------------------ goal -> job
    def _job(self, goal: PostTrain.Goal, goal_id: str) -> PostTrainJob:
        for path in [*goal.datasets, goal.base_checkpoint]:
            if path and not Path(path).expanduser().exists():
                raise Gen0Error(f"no such file or folder: {path}")
        out = goal.output_dir or str(self.workspace / (time.strftime("%Y%m%d_%H%M%S") + "_" + goal_id[:8]))
        # Goal fields left at 0 take the post-training defaults (train/config.py), as `gen0 posttrain` does.
        given = {
            "steps": goal.steps,
            "batch_size": goal.batch_size,
            "lr": float(goal.learning_rate),
            "val_fraction": float(goal.validation_fraction),
        }
        train = {key: value for key, value in given.items() if value}
        train.update(freeze=list(goal.freeze), seed=goal.seed, preset=self.p["scratch_preset"])
        train.update(device=self.p["device"], threads=self.p["threads"])
        return PostTrainJob(data=list(goal.datasets), out_dir=out, base=goal.base_checkpoint, train=train)

    # ------------------------------------------------------------------ the action
    def _execute(self, goal_handle) -> PostTrain.Result:
        goal_id = bytes(goal_handle.goal_id.uuid).hex()
        if not self._slot.acquire(blocking=False):
            goal_handle.abort()
            return PostTrain.Result(
                success=False,
                message=f"rejected, not queued: post-training goal {self._running[0][:8]} is still running; "
                "send this goal again when it has finished (or cancel it)",
            )
        try:
            self._running = (goal_id, None)
            return self._train(goal_handle, goal_id)
        finally:
            self._running = ("", None)
            self._slot.release()

    def _train(self, goal_handle, goal_id: str) -> PostTrain.Result:
        goal = goal_handle.request
        try:
            job = self._job(goal, goal_id)
        except Gen0Error as exc:
            goal_handle.abort()
            return PostTrain.Result(success=False, message=f"bad goal: {exc}")
        events: queue.Queue = queue.Queue()
        proc = PostTrainProcess(job, on_event=events.put)
        proc.start()
        self._running = (goal_id, proc)
        self.get_logger().info(f"post-training {job.data} from {job.base or 'scratch'} into {job.out_dir}")
        feedback = PostTrain.Feedback(phase="preparing data", total_steps=job.config().steps, validation_error=math.nan)
        last_sent = 0.0
        while proc.running or not events.empty():
            if goal_handle.is_cancel_requested and not proc.canceled:
                self.get_logger().info("cancel requested: stopping the training process")
                proc.cancel(self.p["cancel_grace"])
            phase_changed = self._apply(events, feedback)
            if phase_changed or time.monotonic() - last_sent >= self.p["feedback_period"]:
                goal_handle.publish_feedback(feedback)
                last_sent = time.monotonic()
            time.sleep(0.05)
        outcome = proc.wait()
        return self._finish(goal_handle, goal, outcome, feedback)

    @staticmethod
    def _apply(events: queue.Queue, feedback: PostTrain.Feedback) -> bool:
        """Fold the child's events into the feedback message; True if the phase changed."""
        changed = False
        while not events.empty():
            event = events.get()
            kind = event.get("event")
            if kind == "phase":
                changed = changed or feedback.phase != event["phase"]
                feedback.phase = event["phase"]
            elif kind == "step":
                feedback.step, feedback.total_steps = int(event["step"]), int(event["total_steps"])
                feedback.training_loss, feedback.eta = float(event["loss"]), float(event["eta"])
            elif kind == "validation":
                feedback.validation_error = float(event["validation_error"])
        return changed

    def _finish(self, goal_handle, goal, outcome: PostTrainOutcome, feedback) -> PostTrain.Result:
        result = PostTrain.Result(
            success=outcome.status == "succeeded",
            message=outcome.message,
            checkpoint_path=outcome.checkpoint_path,
            validation_error_before=outcome.validation_error_before,
            validation_error_after=outcome.validation_error_after,
            steps_completed=outcome.steps_completed,
            duration=outcome.duration,
        )
        if outcome.status == "succeeded" and goal.load_into_policy:
            feedback.phase = "loading into policy"
            goal_handle.publish_feedback(feedback)
            loaded, message = self._load_into_policy(goal.policy_node, outcome.checkpoint_path)
            result.success = loaded
            result.message = f"{outcome.message}; {message}"
        log = self.get_logger().info if result.success else self.get_logger().warning
        log(result.message)
        if outcome.status == "canceled" and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _load_into_policy(self, policy_node: str, path: str) -> tuple[bool, str]:
        name = "/" + (policy_node or self.p["default_policy_node"]).strip("/")
        service = f"{name}/load_checkpoint"
        # One client per service for the node's life: a fresh client's first answer can be lost while
        # DDS discovery settles (ros2/rmw_fastrtps#842), and jobs finish minutes apart.
        if service not in self._load_clients:
            self._load_clients[service] = self.create_client(LoadCheckpoint, service, callback_group=self._group)
        client = self._load_clients[service]
        if not client.wait_for_service(timeout_sec=self.p["service_wait"]):
            return False, f"not loaded: no {service} service (is the policy node running?); checkpoint kept"
        future = client.call_async(LoadCheckpoint.Request(path=path))
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.p["load_timeout"]):
            client.remove_pending_request(future)
            return False, f"not loaded: {service} did not answer within {self.p['load_timeout']} s"
        reply = future.result()
        if not reply.success:
            return False, f"{name} did not load it ({reply.message}); it keeps running {reply.checkpoint_id}"
        return True, f"{name} loaded {reply.checkpoint_id} in {reply.load_time:.2f} s ({reply.message})"

    def shutdown(self) -> None:
        """Stop a running job (it saves its last good checkpoint) before the node goes away."""
        proc = self._running[1]
        if proc is not None and proc.running:
            proc.cancel(self.p["cancel_grace"])
            proc.wait()


def main(args: list[str] | None = None) -> None:
    init(args)
    node = PostTrainNode()
    try:
        spin(node, MultiThreadedExecutor(num_threads=4))
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
