"""Demonstration recording: the recorder node (one rosbag2 MCAP bag per episode) and, for hardware
teleoperation, the leader-arm mirror node that turns a leader arm's joint states into commands.

    ros2 launch gen0_policy record.launch.py output_dir:=~/demos embodiment:=panda
    ros2 launch gen0_policy record.launch.py leader_mirror:=true          # with a leader arm

Episodes start and stop with /recorder/start_episode and /recorder/stop_episode (gen0_msgs/srv);
/episode_info says what is being recorded. Then: gen0 data build ~/demos --out DATASET.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    embodiment = LaunchConfiguration("embodiment")
    arguments = [
        DeclareLaunchArgument(
            "embodiment", default_value="panda", description="Robot being recorded (config/embodiments)"
        ),
        DeclareLaunchArgument(
            "output_dir", default_value="~/gen0_bags", description="Folder receiving one bag per episode"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "recorder.yaml"]),
            description="Recorder parameters (topics, flush period, QoS depth)",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Stamp bag messages with /clock (true with a simulator)"
        ),
        DeclareLaunchArgument(
            "leader_mirror", default_value="false", description="Also run the leader-arm mirror node (hardware teleop)"
        ),
        DeclareLaunchArgument(
            "mirror_params_file",
            default_value=PathJoinSubstitution([share, "config", "leader_mirror.yaml"]),
            description="Leader mirror parameters (leader topic, deadman timeout, velocity scale)",
        ),
    ]
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    recorder = Node(
        package="gen0_policy",
        executable="gen0_recorder_node",
        name="recorder",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {"embodiment": embodiment, "output_dir": LaunchConfiguration("output_dir"), "use_sim_time": use_sim_time},
        ],
    )
    mirror = Node(
        package="gen0_policy",
        executable="gen0_leader_mirror_node",
        name="leader_mirror",
        output="screen",
        condition=IfCondition(LaunchConfiguration("leader_mirror")),
        parameters=[LaunchConfiguration("mirror_params_file"), {"embodiment": embodiment}],
    )
    return LaunchDescription([*arguments, recorder, mirror])
