"""MoveIt's move_group for an arm of the suite, on a full ROS 2 Jazzy install with MoveIt
(`sudo apt install ros-jazzy-moveit`): config/moveit/<embodiment>/ (SRDF, KDL kinematics, joint
limits, OMPL, the joint_trajectory_controller as MoveIt's controller), for RViz's MotionPlanning
panel or any MoveIt client.

    ros2 launch gen0_policy moveit.launch.py embodiment:=ur5e use_sim_time:=true

Start the robot first (sim_gazebo.launch.py, or the hardware's ros2_control stack): MoveIt reads
/joint_states and executes on /joint_trajectory_controller/follow_joint_trajectory. The moves
before and between episodes (gen0_moveit_moves, moveit_py) need no move_group: policy.launch.py
premove:=true runs them.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _move_group(context: LaunchContext) -> list:
    """move_group with the parameters gen0_policy.moveit_config assembles (the same as MoveItPy's)."""
    from gen0_policy.moveit_config import moveit_parameters

    name = LaunchConfiguration("embodiment").perform(context)
    sim_time = LaunchConfiguration("use_sim_time").perform(context) == "true"
    move_group = Node(
        package="moveit_ros_move_group",
        executable="move_group",
        output="screen",
        parameters=[moveit_parameters(name), {"use_sim_time": sim_time}],
    )
    return [move_group]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="panda", description="Arm with MoveIt config: panda, ur5e"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Follow /clock (simulators)"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_move_group)])
