"""Moves MoveIt plans, for full ROS installs with moveit_py: the arm to its SRDF ``home`` state or
to an approach pose before the policy starts (policy.launch.py premove:=true), and again between
episodes (run it while the policy is inactive). A one-shot process: it moves, then exits 0, or 1
with one line saying why.

MoveIt plans with OMPL and executes on the joint_trajectory_controller's follow_joint_trajectory
action (config/moveit/<arm>/). The gripper's controller is a forward_command_controller, which has
no action for MoveIt, so ``home`` also writes the gripper's home opening to
/gripper_controller/commands. moveit_py is imported only when a move is asked for: without MoveIt
the process says that MoveIt is required instead of a traceback.

    ros2 run gen0_policy gen0_moveit_moves --ros-args -p embodiment:=ur5e -p "moves:=[home, approach]"
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.moveit_config import ARM_GROUP, check_arm, moveit_parameters

MOVEIT_REQUIRED = (
    "MoveIt is required for the MoveIt moves (premove): on a full ROS 2 Jazzy install run "
    "`sudo apt install ros-jazzy-moveit ros-jazzy-moveit-py` and source /opt/ros/jazzy/setup.bash"
)
MOVES = ("home", "approach")
PARAMETERS: dict[str, Any] = {
    "embodiment": "panda",
    "moves": ["home"],
    "approach_pose": [0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0],
}


def import_moveit_py() -> type:
    """MoveItPy, or Gen0Error(MOVEIT_REQUIRED) where moveit_py is not installed."""
    try:
        from moveit.planning import MoveItPy
    except ImportError as exc:
        raise Gen0Error(MOVEIT_REQUIRED) from exc
    return MoveItPy


def check_moves(moves: Sequence[str], approach_pose: Sequence[float]) -> None:
    """Refuse unknown moves and a pose that is not x y z qx qy qz qw with a unit quaternion."""
    unknown = [m for m in moves if m not in MOVES]
    if unknown:
        raise ConfigError(f"unknown moves {unknown}; known moves are {', '.join(MOVES)}")
    if "approach" in moves and (
        len(approach_pose) != 7 or not math.isclose(math.hypot(*approach_pose[3:]), 1.0, abs_tol=1e-3)
    ):
        raise ConfigError(f"approach_pose must be x y z qx qy qz qw (unit quaternion), got {list(approach_pose)}")


class MoveItMoves:
    """The arm's planning component and the gripper's command topic of one embodiment."""

    def __init__(self, node: Node, embodiment: str) -> None:
        check_arm(embodiment)
        moveit_py = import_moveit_py()
        self.embodiment = load_embodiment(embodiment)
        config = moveit_parameters(embodiment, moveit_py=True)
        config["use_sim_time"] = node.get_parameter("use_sim_time").value  # MoveItPy runs its own node
        # node_name must be "moveit_py": MoveItPy files config_dict under that node name.
        self.moveit = moveit_py(node_name="moveit_py", config_dict=config)
        self.arm = self.moveit.get_planning_component(ARM_GROUP)
        self.node = node
        self.gripper = self.embodiment.controller("gripper_controller")
        self.gripper_pub = node.create_publisher(Float64MultiArray, f"{self.gripper.name}/commands", 10)

    def home(self) -> None:
        """The SRDF's ``home`` state (the embodiment's home), then the gripper's home opening."""
        self._move("home", configuration_name="home")
        home = dict(zip(self.embodiment.joint_names, self.embodiment.home.tolist(), strict=True))
        self._command_gripper([home[j] for j in self.gripper.joints])

    def approach(self, pose: Sequence[float]) -> None:
        """The tcp to ``pose`` (x y z qx qy qz qw in the arm's base frame)."""
        goal = PoseStamped()
        goal.header.frame_id = self.embodiment.sim["base_body"]
        p, q = goal.pose.position, goal.pose.orientation
        p.x, p.y, p.z, q.x, q.y, q.z, q.w = (float(v) for v in pose)
        self._move(f"approach pose {list(pose)}", pose_stamped_msg=goal, pose_link=self.embodiment.sim["tcp_sites"][0])

    def _move(self, what: str, **goal: Any) -> None:
        self.arm.set_start_state_to_current_state()
        self.arm.set_goal_state(**goal)
        plan = self.arm.plan()
        if not plan:
            raise Gen0Error(f"MoveIt found no plan to {what} for {self.embodiment.name}")
        self.node.get_logger().info(f"moving to {what}")
        self.moveit.execute(plan.trajectory, controllers=[])

    def _command_gripper(self, positions: list[float], timeout: float = 5.0) -> None:
        """Publish once the controller listens: a forward command controller holds the last command."""
        deadline = time.monotonic() + timeout
        while self.gripper_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise Gen0Error(f"nobody listens on {self.gripper_pub.topic_name}; is {self.gripper.name} active?")
            time.sleep(0.05)
        self.gripper_pub.publish(Float64MultiArray(data=positions))


def run(node: Node) -> None:
    """Check the parameters, then make the moves in order."""
    p = {name: node.declare_parameter(name, default).value for name, default in PARAMETERS.items()}
    check_moves(p["moves"], p["approach_pose"])
    moves = MoveItMoves(node, p["embodiment"])
    for move in p["moves"]:
        if move == "home":
            moves.home()
        else:
            moves.approach(p["approach_pose"])
    node.get_logger().info(f"done: {', '.join(p['moves'])}")


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = Node("gen0_moveit_moves")
    try:
        run(node)
    except Gen0Error as exc:
        print(f"gen0_moveit_moves: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
