"""A simulator plus the gen0 policy on sim time: what `gen0 bringup sim` starts without ROS launch.

ros2 launch gen0_policy sim_policy.launch.py embodiment:=panda task:=reach checkpoint:=/path/to/checkpoint
ros2 launch gen0_policy sim_policy.launch.py simulator:=gazebo ...   # same policy, Gazebo instead of MuJoCo
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import LaunchConfigurationEquals
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="panda", description="Robot: ur5e, panda, g1, sawyer"),
        DeclareLaunchArgument("task", default_value="reach", description="Sim task (gen0 sim info lists them)"),
        DeclareLaunchArgument("checkpoint", description="Checkpoint folder (or training run folder) to load"),
        DeclareLaunchArgument("mode", default_value="synchronous", description="synchronous or harmonic execution"),
        DeclareLaunchArgument("simulator", default_value="mujoco", description="mujoco or gazebo"),
    ]
    common = {"embodiment": LaunchConfiguration("embodiment")}
    sims = [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", f"sim_{name}.launch.py"])),
            launch_arguments={**common, "task": LaunchConfiguration("task")}.items()
            if name == "mujoco"
            else common.items(),
            condition=LaunchConfigurationEquals("simulator", name),
        )
        for name in ("mujoco", "gazebo")
    ]
    policy = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
        launch_arguments={
            **common,
            "checkpoint": LaunchConfiguration("checkpoint"),
            "mode": LaunchConfiguration("mode"),
            "use_sim_time": "true",
        }.items(),
    )
    return LaunchDescription([*arguments, *sims, policy])
