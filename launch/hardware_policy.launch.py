"""The gen0 policy on a real robot: policy.launch.py (the same node and parameter file as in
simulation) with wall time, a real-time control thread and derated limits. Only arguments differ.

    ros2 launch gen0_policy hardware_policy.launch.py embodiment:=ur5e checkpoint:=/path/to/checkpoint

Start the robot's ros2_control stack (joint_state_broadcaster and the embodiment's controllers) and
camera drivers publishing /<camera>/image_raw first.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="ur5e", description="Robot: ur5e, panda or g1"),
        DeclareLaunchArgument("checkpoint", description="Checkpoint folder (or training run folder) to load"),
        DeclareLaunchArgument("mode", default_value="harmonic", description="harmonic or synchronous execution"),
        DeclareLaunchArgument(
            "limit_scale", default_value="0.5", description="Fraction of the velocity/acceleration limits used"
        ),
        DeclareLaunchArgument(
            "realtime_priority", default_value="50", description="SCHED_FIFO priority of the control thread (0: off)"
        ),
        DeclareLaunchArgument(
            "output_mode", default_value="joint_trajectory", description="joint_trajectory or forward_position"
        ),
        DeclareLaunchArgument("autostart", default_value="false", description="Configure and activate on start"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "policy_node.yaml"]),
            description="gen0_policy_node parameters",
        ),
    ]
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "embodiment": LaunchConfiguration("embodiment"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "mode": LaunchConfiguration("mode"),
            "limit_scale": LaunchConfiguration("limit_scale"),
            "realtime_priority": LaunchConfiguration("realtime_priority"),
            "output_mode": LaunchConfiguration("output_mode"),
            "autostart": LaunchConfiguration("autostart"),
            "params_file": LaunchConfiguration("params_file"),
            "use_sim_time": "false",  # wall time on hardware
        }.items(),
    )
    return LaunchDescription([*arguments, policy])
