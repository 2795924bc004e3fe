"""launch/predictor.launch.py names things that exist: `launch` is not installable here, so the file is parsed
with `ast` (never imported) and every name it relies on is checked against the package."""
import ast
import os
import pathlib
import re
import xml.etree.ElementTree as ET

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "predictor.launch.py"
TREE = ast.parse(LAUNCH.read_text())
PACKAGE = ET.parse(ROOT / "package.xml").getroot().findtext("name")


def calls(name):
    return [n for n in ast.walk(TREE) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


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
                        "camera_info_topic", "preset"}
    used = {c.args[0].value for c in calls("LaunchConfiguration") + calls("arg")
            if isinstance(c.args[0], ast.Constant)}
    assert declared <= used  # no argument is declared and then ignored


def test_default_params_file_is_installed_and_parses():
    (join,) = [c for c in ast.walk(TREE) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
               and c.func.attr == "join" and any(getattr(a.func, "id", "") == "get_package_share_directory"
                                                 for a in c.args if isinstance(a, ast.Call))]
    share_call, *parts = join.args
    assert ast.literal_eval(share_call.args[0]) == PACKAGE
    relative = pathlib.Path(*(ast.literal_eval(p) for p in parts))
    assert (ROOT / relative).is_file()
    assert yaml.safe_load((ROOT / relative).read_text())
    # and CMakeLists installs config/ and launch/ into share/<package>
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in (ROOT / "CMakeLists.txt").read_text()
