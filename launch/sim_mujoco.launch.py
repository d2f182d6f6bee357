"""The MuJoCo simulator with a ros2_control robot's ROS 2 interface (gen0_sim_node), plus
robot_state_publisher so TF carries the robot's frames (camera optical frames included).

    ros2 launch gen0_policy sim_mujoco.launch.py embodiment:=ur5e task:=pick_place

Topics: /joint_states, /clock, /<camera>/image_raw + camera_info, /task_status,
/<controller>/joint_trajectory, /<controller>/commands; service /gen0_sim/reset. Other nodes
should run with use_sim_time:=true. sim_gazebo.launch.py offers the same controllers in Gazebo.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    embodiment = LaunchConfiguration("embodiment")
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="panda", description="Robot: ur5e, panda, g1, sawyer"),
        DeclareLaunchArgument("task", default_value="reach", description="Task to simulate (gen0 sim info lists them)"),
        DeclareLaunchArgument("seed", default_value="0", description="Seed of the first episode"),
        DeclareLaunchArgument(
            "real_time_factor", default_value="1.0", description="Sim seconds per wall second; 0 = as fast as possible"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "sim_node.yaml"]),
            description="gen0_sim_node parameters (rates, camera size, controller options)",
        ),
        DeclareLaunchArgument(
            "publish_tf",
            default_value="true",
            description="Run robot_state_publisher on config/urdf/<embodiment>.urdf.xacro for the robot's TF frames",
        ),
    ]
    sim = Node(
        package="gen0_policy",
        executable="gen0_sim_node",
        name="gen0_sim",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "embodiment": embodiment,
                "task": LaunchConfiguration("task"),
                "seed": ParameterValue(LaunchConfiguration("seed"), value_type=int),
                "real_time_factor": ParameterValue(LaunchConfiguration("real_time_factor"), value_type=float),
            },
        ],
    )
    description = Command(
        [
            "xacro ",
            PathJoinSubstitution([share, "config", "urdf", [embodiment, ".urdf.xacro"]]),
            " ros2_control_plugin:=mock_components/GenericSystem",
        ]
    )
    state_publisher = Node(
        package="robot_state_publisher",
        executable="robot_state_publisher",
        output="screen",
        condition=IfCondition(LaunchConfiguration("publish_tf")),
        parameters=[{"robot_description": ParameterValue(description, value_type=str), "use_sim_time": True}],
    )
    return LaunchDescription([*arguments, sim, state_publisher])
