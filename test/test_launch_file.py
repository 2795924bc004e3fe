"""The launch files name things that exist: `launch` is not installable here (no ROS `launch`/`launch_ros` on
PyPI or the local index), so the files are parsed with `ast` (never imported) and every name they rely on is
checked against the package; CMakeLists installs what they need in both build routes."""
import ast
import json
import os
import pathlib
import re
import xml.etree.ElementTree as ET

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "predictor.launch.py"
TREE = ast.parse(LAUNCH.read_text())
CARLA = ast.parse((ROOT / "launch" / "carla.launch.py").read_text())
PACKAGE = ET.parse(ROOT / "package.xml").getroot().findtext("name")


def calls(name, tree=TREE):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def kwarg(call, key):
    return next(k.value for k in call.keywords if k.arg == key)


def test_the_node_it_starts_is_this_package_s_predictor():
    from syncvp_ros.predictor_node import NODE_NAME

    (node,) = calls("Node")
    assert ast.literal_eval(kwarg(node, "package")) == PACKAGE
    assert ast.literal_eval(kwarg(node, "name")) == NODE_NAME
    executable = ROOT / "scripts" / "ros" / ast.literal_eval(kwarg(node, "executable"))
    assert executable.is_file() and os.access(executable, os.X_OK)
    text = executable.read_text()
    assert text.startswith("#!/usr/bin/env python3\n") and "from syncvp_ros.predictor_node import main" in text
    # CMakeLists installs scripts/ros/* into lib/<package>, where `ros2 run` and launch look
    assert re.search(r'file\(GLOB _executables "\$\{CMAKE_CURRENT_SOURCE_DIR\}/scripts/ros/\*"\)',
                     (ROOT / "CMakeLists.txt").read_text())


def test_remappings_target_the_node_s_input_topics():
    from syncvp_ros.predictor_node import TOPICS

    (node,) = calls("Node")
    sources = [ast.literal_eval(pair.elts[0]) for pair in kwarg(node, "remappings").elts]
    assert sorted(sources) == sorted(TOPICS[k] for k in ("rgb", "depth", "camera_info"))


def test_declared_arguments_and_their_use():
    declared = {ast.literal_eval(c.args[0]) for c in calls("DeclareLaunchArgument")}
    assert declared == {"params_file", "use_sim_time", "namespace", "rgb_topic", "depth_topic",
                        "camera_info_topic", "preset", "dds_profile"}
    used = {c.args[0].value for c in calls("LaunchConfiguration") + calls("arg")
            if isinstance(c.args[0], ast.Constant)}
    assert declared <= used  # no argument is declared and then ignored


def share_files(tree):
    """Share-relative paths the file joins onto `share = get_package_share_directory(PACKAGE)`."""
    (share,) = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                and getattr(n.value.func, "id", "") == "get_package_share_directory"]
    assert ast.literal_eval(share.value.args[0]) == PACKAGE
    joins = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "attr", "") == "join"
             and c.args and getattr(c.args[0], "id", "") == share.targets[0].id]
    paths = []
    for join in joins:
        parts = join.args[1:]
        if len(parts) == 1 and isinstance(parts[0], ast.Starred):  # os.path.join(share, *DDS_PROFILE)
            (constant,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                           and getattr(n.targets[0], "id", "") == parts[0].value.id]
            parts = constant.elts
        paths.append(pathlib.Path(*(ast.literal_eval(p) for p in parts)))
    return paths


def test_default_share_files_exist_and_parse():
    for tree in (TREE, CARLA):
        for relative in share_files(tree):
            assert (ROOT / relative).is_file(), relative
            text = (ROOT / relative).read_text()
            assert {".yaml": yaml.safe_load, ".json": json.loads, ".xml": ET.fromstring}[relative.suffix](text)
    assert {p.name for p in share_files(TREE)} == {"predictor.yaml", "fastdds_large_frames.xml"}


def test_both_build_routes_install_the_share_files_and_executables():
    """The venv route (SYNCVP_INTERFACES_ONLY) too: `ros2 launch` from the venv prefix needs them."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    interfaces_only = re.search(r"if\(NOT SYNCVP_INTERFACES_ONLY\)(.*?)endif\(\)", cmake, re.S).group(1)
    for line in ("install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})",
                 "install(PROGRAMS ${_executables} DESTINATION lib/${PROJECT_NAME})"):
        assert line in cmake and line not in interfaces_only, line


def test_the_large_frame_dds_profile_is_set_for_every_started_process():
    profile = ET.parse(ROOT / "config" / "fastdds_large_frames.xml").getroot()
    ns = {"f": "http://www.eprosima.com"}
    (segment,) = profile.iterfind(".//f:transport_descriptor[f:type='SHM']/f:segment_size", ns)
    assert int(segment.text) >= 16 * 2**20
    assert [i.get("name") for i in profile.iterfind(".//f:allowlist/f:interface", ns)] == ["127.0.0.1"]
    for tree in (TREE, CARLA):  # Fast DDS 2 (Jazzy) and 3 (Kilted on) read different variables
        (comprehension,) = [n for n in ast.walk(tree) if isinstance(n, ast.ListComp)
                            and getattr(n.elt.func, "id", "") == "SetEnvironmentVariable"]
        assert comprehension.elt.args[0].id == comprehension.generators[0].target.id
        (variables,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                        and getattr(n.targets[0], "id", "") == comprehension.generators[0].iter.id]
        assert ast.literal_eval(variables) == ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
    # carla.launch.py sets them before anything is started (the bridge's cameras write the large frames)
    (description,) = calls("LaunchDescription", CARLA)
    kinds = [getattr((a.value.elt if isinstance(a, ast.Starred) else a).func, "id", "")
             for a in description.args[0].elts if isinstance(a, (ast.Call, ast.Starred))]
    assert kinds.index("SetEnvironmentVariable") < min(kinds.index(k) for k in ("include", "ExecuteProcess"))


def test_carla_recorder_is_the_package_executable_under_a_current_condition():
    (record,) = calls("ExecuteProcess", CARLA)
    cmd = kwarg(record, "cmd").elts
    assert not any(isinstance(c, ast.Constant) and c.value == "ros2" for c in cmd)  # `ros2 run` eats SIGINT
    (prefix, *parts) = cmd[0].args[0].elts
    assert prefix.func.id == "FindPackagePrefix" and ast.literal_eval(prefix.args[0]) == PACKAGE
    assert [ast.literal_eval(p) for p in parts] == ["lib", PACKAGE, "syncvp-bag"]
    assert os.access(ROOT / "scripts" / "ros" / "syncvp-bag", os.X_OK)
    for tree in (TREE, CARLA):  # launch warns "Conditions are deprecated" for LaunchConfiguration(Not)Equals
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not names & {"LaunchConfigurationEquals", "LaunchConfigurationNotEquals"}


def test_the_venv_prefix_holds_what_ros2_launch_and_run_look_for():
    """After `make setup`: with AMENT_PREFIX_PATH naming the venv (docs/ros2-setup.md), the package's share
    directory and executables resolve through the ament index, as launch's FindPackageShare/Prefix do."""
    import subprocess
    import sys

    prefix = pathlib.Path(sys.prefix)
    probe = ("from ament_index_python.packages import get_package_prefix, get_package_share_directory as share; "
             "print(share('syncvp_ros')); print(get_package_prefix('syncvp_ros'))")
    run = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "AMENT_PREFIX_PATH": str(prefix)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    share, found_prefix = map(pathlib.Path, run.stdout.split())
    assert found_prefix == prefix and share == prefix / "share" / PACKAGE
    for relative in ("launch/predictor.launch.py", "launch/carla.launch.py", "config/predictor.yaml",
                     "config/fastdds_large_frames.xml"):
        assert (share / relative).is_file(), relative  # (a copy as of the last `make interfaces`)
    for executable in ("predictor", "syncvp-bag"):
        assert os.access(prefix / "lib" / PACKAGE / executable, os.X_OK), executable
