"""syncvp_predictor behind the CARLA ROS bridge (docs/carla.md): predictor.launch.py with the CARLA preset.

    ros2 launch syncvp_ros carla.launch.py                       # the node; the bridge runs elsewhere
    ros2 launch syncvp_ros carla.launch.py bridge:=true          # also the bridge (synchronous, 20 Hz sim time)
                                                                 # and the ego vehicle with our aligned cameras
    ros2 launch syncvp_ros carla.launch.py record:=/data/run1    # also record inputs + predictions for
                                                                 # `syncvp-bag eval`

The node gets config/carla.yaml (sim time, CARLA's depth range, reliable inputs) and the bridge's topics of the
role name and camera ids that config/carla_objects.json spawns.
"""
import os

ROLE, RGB_SENSOR, DEPTH_SENSOR = "ego_vehicle", "rgb_front", "depth_front"
# As predictor.launch.py: Fast DDS 2 (Jazzy) reads the first, Fast DDS 3 (Kilted on) the second.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def carla_topics(role, rgb_sensor, depth_sensor):
    """predictor.launch.py's topic arguments -> the bridge's topic, as parts (strings or substitutions)."""
    return {"rgb_topic": ["/carla/", role, "/", rgb_sensor, "/image"],
            "depth_topic": ["/carla/", role, "/", depth_sensor, "/image"],
            "camera_info_topic": ["/carla/", role, "/", rgb_sensor, "/camera_info"]}


def generate_launch_description():
    # Imported here so that tests without `launch` can still read carla_topics from this file.
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                                SetEnvironmentVariable)
    from launch.conditions import IfCondition
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution, PathJoinSubstitution
    from launch_ros.substitutions import FindPackagePrefix, FindPackageShare

    share = get_package_share_directory("syncvp_ros")
    arg = LaunchConfiguration
    topics = carla_topics(arg("role_name"), arg("rgb_sensor"), arg("depth_sensor"))

    def include(package, path, arguments, condition=None):
        """A launch file at `path` (parts) under the package's share directory."""
        source = PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(package), *path]))
        return IncludeLaunchDescription(source, launch_arguments=arguments.items(), condition=condition)

    recording = IfCondition(NotEqualsSubstitution(arg("record"), ""))
    profile = arg("dds_profile")
    return LaunchDescription([
        # First, so that the bridge's cameras (the writers of the large frames) use it too.
        DeclareLaunchArgument("dds_profile", default_value=os.path.join(share, "config", "fastdds_large_frames.xml"),
                              description="Fast DDS profile for large frames ('' = leave the environment alone)"),
        *[SetEnvironmentVariable(name, profile, condition=IfCondition(NotEqualsSubstitution(profile, "")))
          for name in PROFILE_VARIABLES],
        DeclareLaunchArgument("role_name", default_value=ROLE, description="the ego vehicle's role name"),
        DeclareLaunchArgument("rgb_sensor", default_value=RGB_SENSOR, description="id of the RGB camera"),
        DeclareLaunchArgument("depth_sensor", default_value=DEPTH_SENSOR, description="id of the depth camera"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "carla.yaml")),
        DeclareLaunchArgument("bridge", default_value="false",
                              description="also start carla_ros_bridge and spawn config/carla_objects.json"),
        DeclareLaunchArgument("objects_file", default_value=os.path.join(share, "config", "carla_objects.json")),
        DeclareLaunchArgument("host", default_value="localhost", description="CARLA server"),
        DeclareLaunchArgument("port", default_value="2000"),
        DeclareLaunchArgument("town", default_value="Town01"),
        DeclareLaunchArgument("record", default_value="", description="bag folder to record into ('' = no)"),
        # the bridge packages install their launch files at the top of their share directory
        include("carla_ros_bridge", ["carla_ros_bridge.launch.py"],
                {"host": arg("host"), "port": arg("port"), "town": arg("town"), "synchronous_mode": "True",
                 "fixed_delta_seconds": "0.05"}, IfCondition(arg("bridge"))),
        include("carla_spawn_objects", ["carla_spawn_objects.launch.py"],
                {"objects_definition_file": arg("objects_file")}, IfCondition(arg("bridge"))),
        include("syncvp_ros", ["launch", "predictor.launch.py"],
                {"params_file": arg("params_file"), "use_sim_time": "true", "dds_profile": profile, **topics}),
        # One bag with inputs and predictions: `syncvp-bag eval BAG ... --predictions BAG` (docs/carla.md).
        # The package's executable itself, not `ros2 run` (which does not pass SIGINT on: the recorder would be
        # orphaned and the bag left without metadata.yaml); launch_ros' Node would append --ros-args.
        ExecuteProcess(
            cmd=[PathJoinSubstitution([FindPackagePrefix("syncvp_ros"), "lib", "syncvp_ros", "syncvp-bag"]),
                 "record", *topics.values(), "/syncvp_predictor/output/prediction", "/diagnostics", "/clock",
                 "--use-sim-time", "--out", arg("record")],
            output="screen", condition=recording),
    ])
