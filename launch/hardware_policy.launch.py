"""The gen0 policy on a real robot: policy.launch.py (the same node and parameter file as in
simulation) with wall time, a real-time control thread and derated limits. This file declares only
the arguments whose defaults differ on hardware; every other argument of policy.launch.py
(checkpoint, mode, output_mode, instruction, params_file) is given on the command line as usual.

    ros2 launch gen0_policy hardware_policy.launch.py embodiment:=ur5e checkpoint:=/path/to/checkpoint

Start the robot's ros2_control stack (joint_state_broadcaster and the embodiment's controllers) and
camera drivers publishing /<camera>/image_raw first. premove:=true (needs MoveIt; README "MoveIt")
moves the arm home with MoveIt before the policy starts.
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
        DeclareLaunchArgument("limit_scale", default_value="0.5", description="Derated share of the joint limits"),
        DeclareLaunchArgument("autostart", default_value="false", description="Activate only when told (lifecycle)"),
        DeclareLaunchArgument("realtime_priority", default_value="50", description="SCHED_FIFO priority (0: off)"),
    ]
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            "embodiment": LaunchConfiguration("embodiment"),
            "limit_scale": LaunchConfiguration("limit_scale"),
            "autostart": LaunchConfiguration("autostart"),
            "realtime_priority": LaunchConfiguration("realtime_priority"),
            "use_sim_time": "false",  # wall time on hardware
        }.items(),
    )
    return LaunchDescription([*arguments, policy])
