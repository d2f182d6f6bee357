"""The gen0 policy on a real robot: the same node and parameter file as in simulation, with wall
time, a real-time control thread and derated limits. Only parameters differ from sim_policy.

    ros2 launch gen0_policy hardware_policy.launch.py embodiment:=ur5e checkpoint:=/path/to/checkpoint

Start the robot's ros2_control stack (joint_state_broadcaster and the embodiment's controllers) and
camera drivers publishing /<camera>/image_raw first.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
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
    node = LifecycleNode(
        package="gen0_policy",
        executable="gen0_policy_node",
        name="gen0_policy",
        namespace="",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "embodiment": LaunchConfiguration("embodiment"),
                "checkpoint": LaunchConfiguration("checkpoint"),
                "mode": LaunchConfiguration("mode"),
                "output_mode": LaunchConfiguration("output_mode"),
                "use_sim_time": False,
                "limit_scale": ParameterValue(LaunchConfiguration("limit_scale"), value_type=float),
                "realtime_priority": ParameterValue(LaunchConfiguration("realtime_priority"), value_type=int),
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
            },
        ],
    )
    return LaunchDescription([*arguments, node])
