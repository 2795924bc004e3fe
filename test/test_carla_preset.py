"""The CARLA preset: a synthetic bag under the bridge's topic names, encodings (bgra8, 32FC1 metres) and frame ids,
played with /clock through the node started with config/carla.yaml and the remappings of launch/carla.launch.py,
gives predictions. Plus the static contract of the preset files (ROS `launch` is not installable here)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import yaml

from syncvp_ros.bags import io
from syncvp_ros.bags.evaluation import read_predictions
from syncvp_ros.processes import ChildProcess, bag_command, play_through_node

ROOT = Path(__file__).resolve().parents[1]
PREDICTIONS = "/syncvp_predictor/output/prediction"


def launch_module():
    spec = importlib.util.spec_from_file_location("carla_launch", ROOT / "launch" / "carla.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def carla_remaps() -> dict[str, str]:
    """The node remappings that carla.launch.py asks predictor.launch.py for (its *_topic arguments)."""
    launch = launch_module()
    topics = launch.carla_topics(launch.ROLE, launch.RGB_SENSOR, launch.DEPTH_SENSOR)
    return {f"~/input/{argument.removesuffix('_topic')}": "".join(parts) for argument, parts in topics.items()}


def test_preset_files_agree():
    params = yaml.safe_load((ROOT / "config" / "carla.yaml").read_text())["/**/syncvp_predictor"]["ros__parameters"]
    assert params["use_sim_time"] is True and params["qos"]["input"]["reliability"] == "reliable"
    assert carla_remaps() == {"~/input/rgb": "/carla/ego_vehicle/rgb_front/image",
                              "~/input/depth": "/carla/ego_vehicle/depth_front/image",
                              "~/input/camera_info": "/carla/ego_vehicle/rgb_front/camera_info"}
    (ego,) = json.loads((ROOT / "config" / "carla_objects.json").read_text())["objects"]
    launch = launch_module()
    assert ego["id"] == launch.ROLE
    cameras = {o["id"]: o for o in ego["objects"]}
    rgb, depth = cameras[launch.RGB_SENSOR], cameras[launch.DEPTH_SENSOR]
    assert (rgb["type"], depth["type"]) == ("sensor.camera.rgb", "sensor.camera.depth")
    for key in ("spawn_point", "image_size_x", "image_size_y", "fov", "sensor_tick"):  # pixel-aligned
        assert rgb[key] == depth[key], key
    # the arguments it passes to predictor.launch.py are ones that file declares
    predictor_launch = (ROOT / "launch" / "predictor.launch.py").read_text()
    for argument in [*launch.carla_topics("r", "a", "b"), "params_file", "use_sim_time"]:
        assert f'DeclareLaunchArgument("{argument}"' in predictor_launch, argument


def test_carla_bag_through_the_preset(tmp_path, ros_env):
    bag = tmp_path / "carla_drive"
    assert ChildProcess("synth", bag_command("synth", bag, "--preset", "carla", "--frames", 30, "--rate", 20,
                                             "--size", 32, "--quiet")).wait(timeout=120) == 0
    remaps = carla_remaps()
    run = play_through_node(tmp_path, ros_env, bag, ROOT / "config" / "carla.yaml",
                            {"checkpoint": "preset:tiny", "horizon": 8, "ddim_steps": 2, "seed": 0}, remaps,
                            [PREDICTIONS], ["--clock", "--rate", "0.5"],
                            wait_for=[remaps["~/input/rgb"], remaps["~/input/depth"]])
    assert run.node_exit == 0
    start = io.bag_info(bag).start_ns
    predictions = list(read_predictions(run.recording, PREDICTIONS))
    modes = [r.mode for r, _ in predictions]
    assert "rgbd" in modes, f"no RGB-D prediction from the CARLA-style bag: {modes}"
    # until the first depth frame is in, the node may predict from RGB alone; from then on both are used
    assert set(modes[modes.index("rgbd"):]) == {"rgbd"}, modes
    for record, msg in predictions:
        assert msg.header.frame_id == "ego_vehicle/rgb_front"
        assert 0 < record.stamp_ns - start <= 1.5e9  # a stamp of the bag: sim time from /clock
        assert [im.encoding for im in msg.rgb] == ["rgb8"] * 8 and [im.encoding for im in msg.depth] == ["32FC1"] * 8
        assert (msg.camera_info.width, msg.camera_info.height) == (64, 64)
        k = np.asarray(msg.camera_info.k).reshape(3, 3)
        assert k[0, 0] > 0 and k[2, 2] == 1  # the remapped camera_info arrived and was scaled
        # 20 Hz sim time: the predicted frames are 50 ms apart
        assert np.diff([record.stamp_ns, *record.targets]).tolist() == [50_000_000] * 8
