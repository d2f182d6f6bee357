"""The post-training node: gen0_msgs/action/PostTrain on /gen0_posttrain/post_train.

    ros2 launch gen0_policy posttrain.launch.py workspace:=~/gen0_posttrain device:=cuda

Training runs in a child process of the node; on success a goal with load_into_policy asks the
policy node (default /gen0_policy) to hot-swap to the new checkpoint. Send a goal with e.g.
    ros2 action send_goal -f /gen0_posttrain/post_train gen0_msgs/action/PostTrain \
      "{base_checkpoint: ckpt/multitask, datasets: [~/gen0_bags], steps: 500, load_into_policy: true}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("gen0_policy")
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "posttrain_node.yaml"]),
            description="gen0_posttrain parameters (workspace, device, grace periods, timeouts)",
        ),
        DeclareLaunchArgument(
            "workspace", default_value="~/gen0_posttrain", description="Folder for runs of goals without output_dir"
        ),
        DeclareLaunchArgument(
            "device", default_value="auto", description="Training device: auto (CUDA if present), cpu or cuda:N"
        ),
        DeclareLaunchArgument(
            "default_policy_node",
            default_value="/gen0_policy",
            description="Policy node to hot-swap when a goal sets load_into_policy without naming one",
        ),
    ]
    node = Node(
        package="gen0_policy",
        executable="gen0_posttrain_node",
        name="gen0_posttrain",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "workspace": LaunchConfiguration("workspace"),
                "device": LaunchConfiguration("device"),
                "default_policy_node": LaunchConfiguration("default_policy_node"),
            },
        ],
    )
    return LaunchDescription([*arguments, node])
