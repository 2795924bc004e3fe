"""Start syncvp_predictor on a real ROS 2 install: `ros2 launch syncvp_ros predictor.launch.py [arg:=value ...]`.

Where `launch` is not installed (pip/venv set-ups), docs/node.md gives the equivalent
`syncvp-predictor --ros-args ...` line.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution
from launch_ros.actions import Node

# Fast DDS profile for large frames (16 MiB shared memory, loopback UDP): see the file and docs/node.md.
DDS_PROFILE = ("config", "fastdds_large_frames.xml")
# Fast DDS 2 (Jazzy) reads the first, Fast DDS 3 (Kilted on) the second.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def dds_profile_actions(default_profile):
    """The `dds_profile` argument and the profile variables for every process started after it."""
    profile = LaunchConfiguration("dds_profile")
    return [DeclareLaunchArgument("dds_profile", default_value=default_profile,
                                  description="Fast DDS profile file for large frames ('' = leave "
                                              "FAST*_DEFAULT_PROFILES_FILE as they are)"),
            *[SetEnvironmentVariable(name, profile, condition=IfCondition(NotEqualsSubstitution(profile, "")))
              for name in PROFILE_VARIABLES]]


def _predictor(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    # Launch arguments override the params file; an empty preset leaves its checkpoint alone.
    overrides = {"use_sim_time": arg("use_sim_time").lower() in ("true", "1")}
    if arg("preset"):
        overrides["checkpoint"] = f"preset:{arg('preset')}"
    return [Node(
        package="syncvp_ros",
        executable="predictor",
        name="syncvp_predictor",
        namespace=arg("namespace"),
        parameters=[arg("params_file"), overrides],
        remappings=[("~/input/rgb", arg("rgb_topic")),
                    ("~/input/depth", arg("depth_topic")),
                    ("~/input/camera_info", arg("camera_info_topic"))],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    share = get_package_share_directory("syncvp_ros")
    default_params = os.path.join(share, "config", "predictor.yaml")
    return LaunchDescription([
        *dds_profile_actions(os.path.join(share, *DDS_PROFILE)),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file (ros__parameters under /**/syncvp_predictor)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Follow /clock (bag replay with --clock, simulators)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("rgb_topic", default_value="/camera/color/image_raw",
                              description="RGB input (rgb8, bgr8, rgba8, bgra8, mono8)"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/depth/image_raw",
                              description="Depth input (32FC1 metres or 16UC1)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/color/camera_info",
                              description="CameraInfo of the RGB camera (optional)"),
        DeclareLaunchArgument("preset", default_value="",
                              description="Use the randomly initialised model preset NAME (checkpoint preset:NAME); "
                                          "empty = the params file's checkpoint"),
        OpaqueFunction(function=_predictor),
    ])
