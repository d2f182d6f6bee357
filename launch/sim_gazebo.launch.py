"""The same robot in Gazebo (Harmonic) through gz_ros2_control: the ROS 2 face matches
gen0_sim_node (MuJoCo), so policy, recorder and teleop nodes run unchanged on either.

    ros2 launch gen0_policy sim_gazebo.launch.py embodiment:=panda gui:=false

Starts Gazebo (ros_gz_sim), robot_state_publisher with config/urdf/<embodiment>.urdf.xacro (its
<ros2_control> tag loads gz_ros2_control with config/controllers/<embodiment>.yaml), spawns the
robot, bridges /clock, then spawns joint_state_broadcaster and the embodiment's controllers once the
robot exists. Needs a full ROS 2 Jazzy install with ros_gz and gz_ros2_control (not the PyPI venv).
"""

from pathlib import Path

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _robot(context: LaunchContext) -> list:
    """Actions that depend on the embodiment's description (its controller names)."""
    share = Path(FindPackageShare("gen0_policy").perform(context))
    name = LaunchConfiguration("embodiment").perform(context)
    description_file = share / "config" / "embodiments" / f"{name}.yaml"
    if not description_file.is_file():
        known = sorted(p.stem for p in description_file.parent.glob("*.yaml"))
        raise RuntimeError(f"unknown embodiment {name!r}; available embodiments are {known}")
    controllers = [c["name"] for c in yaml.safe_load(description_file.read_text()).get("controllers", [])]

    robot_description = Command(
        [
            "xacro ",
            str(share / "config" / "urdf" / f"{name}.urdf.xacro"),
            " ros2_control_plugin:=gz_ros2_control/GazeboSimSystem",
            " controllers_file:=",
            str(share / "config" / "controllers" / f"{name}.yaml"),
        ]
    )
    state_publisher = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        output="screen",
        parameters=[{"robot_description": ParameterValue(robot_description, value_type=str), "use_sim_time": True}],
    )
    spawn = Node(
        package="ros_gz_sim",
        executable="create",
        output="screen",
        arguments=["-topic", "robot_description", "-name", name, "-allow_renaming", "true"],
    )
    broadcaster = Node(
        package="controller_manager",
        executable="spawner",
        arguments=["joint_state_broadcaster", "--controller-manager", "/controller_manager"],
    )
    arm_and_gripper = Node(
        package="controller_manager",
        executable="spawner",
        arguments=[*controllers, "--controller-manager", "/controller_manager"],
    )
    return [
        state_publisher,
        spawn,
        RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=[broadcaster])),
        RegisterEventHandler(OnProcessExit(target_action=broadcaster, on_exit=[arm_and_gripper])),
    ]


def generate_launch_description() -> LaunchDescription:
    gui = LaunchConfiguration("gui")
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="panda", description="Robot: ur5e, panda or g1"),
        DeclareLaunchArgument(
            "world", default_value="empty.sdf", description="Gazebo world file (name on GZ_SIM_RESOURCE_PATH or path)"
        ),
        DeclareLaunchArgument("gui", default_value="true", description="Start the Gazebo GUI (false: server only)"),
    ]
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"])
        ),
        launch_arguments={
            "gz_args": [
                LaunchConfiguration("world"),
                " -r",
                PythonExpression(["'' if '", gui, "' == 'true' else ' -s'"]),
            ],
            "on_exit_shutdown": "true",
        }.items(),
    )
    clock_bridge = Node(
        package="ros_gz_bridge",
        executable="parameter_bridge",
        arguments=["/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock"],
        output="screen",
    )
    return LaunchDescription([*arguments, gazebo, clock_bridge, OpaqueFunction(function=_robot)])
