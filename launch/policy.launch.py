"""The gen0 policy alone, as a lifecycle node, for an existing robot stack (sim or hardware).

    ros2 launch gen0_policy policy.launch.py embodiment:=panda checkpoint:=/path/to/checkpoint

Subscribes /<camera>/image_raw and /joint_states; publishes to the embodiment's controllers
(/<controller>/joint_trajectory or /<controller>/commands), /gen0_policy/status and
/gen0_policy/action_chunk; services /gen0_policy/load_checkpoint and /gen0_policy/set_instruction;
action /gen0_policy/run_task. With autostart:=false, drive the lifecycle yourself
(ros2 lifecycle set /gen0_policy configure, then activate).

premove:=true (off by default; needs MoveIt, README "MoveIt") first runs gen0_moveit_moves
(config/moveit_moves.yaml: the arm home with moveit_py) and starts the policy only once it succeeded.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    arguments = [
        DeclareLaunchArgument("embodiment", default_value="panda", description="Robot: ur5e, panda, g1, sawyer"),
        DeclareLaunchArgument("checkpoint", description="Checkpoint folder (or training run folder) to load"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Follow /clock (simulators)"),
        DeclareLaunchArgument("mode", default_value="synchronous", description="synchronous or harmonic execution"),
        DeclareLaunchArgument("autostart", default_value="true", description="Configure and activate on start"),
        DeclareLaunchArgument(
            "act_on_activate", default_value="true", description="false: stand still until a run_task goal"
        ),
        DeclareLaunchArgument("instruction", default_value="", description="Instruction; empty: from /task_status"),
        # Defaults as in config/policy_node.yaml (a test checks): hardware_policy.launch.py derates them.
        DeclareLaunchArgument(
            "limit_scale", default_value="1.0", description="Fraction of the velocity/acceleration limits used"
        ),
        DeclareLaunchArgument(
            "realtime_priority", default_value="0", description="SCHED_FIFO priority of the control thread (0: off)"
        ),
        DeclareLaunchArgument(
            "output_mode", default_value="joint_trajectory", description="joint_trajectory or forward_position"
        ),
        DeclareLaunchArgument(
            "premove", default_value="false", description="MoveIt moves (home) before the policy starts; needs MoveIt"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "policy_node.yaml"]),
            description="gen0_policy_node parameters (rates, limits, thresholds, output mode)",
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
                "instruction": ParameterValue(LaunchConfiguration("instruction"), value_type=str),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                "act_on_activate": ParameterValue(LaunchConfiguration("act_on_activate"), value_type=bool),
                "limit_scale": ParameterValue(LaunchConfiguration("limit_scale"), value_type=float),
                "realtime_priority": ParameterValue(LaunchConfiguration("realtime_priority"), value_type=int),
            },
        ],
    )
    premove = Node(
        package="gen0_policy",
        executable="gen0_moveit_moves",
        name="gen0_moveit_moves",
        output="screen",
        parameters=[
            PathJoinSubstitution([share, "config", "moveit_moves.yaml"]),
            {
                "embodiment": LaunchConfiguration("embodiment"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
    )

    def start(context) -> list:
        """The policy at once, or after the MoveIt moves: never both commanding the arm."""
        if LaunchConfiguration("premove").perform(context) != "true":
            return [node]

        def after_premove(event, _context) -> list:
            return [node] if event.returncode == 0 else [Shutdown(reason="premove failed; the policy was not started")]

        return [premove, RegisterEventHandler(OnProcessExit(target_action=premove, on_exit=after_premove))]

    return LaunchDescription([*arguments, OpaqueFunction(function=start)])
