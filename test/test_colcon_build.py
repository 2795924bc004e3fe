"""The repository root builds as a ROS 2 package with colcon (the route users take on a ROS 2 install).

The pip/venv route is what every other test runs on; here the same sources go through colcon + ament_cmake into
an install space, and both halves of the one `syncvp_ros` Python package (our modules and the rosidl-generated
`syncvp_ros.msg`) must import from it, with the executables and share files `ros2 run` / `ros2 launch` look for.
"""
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = pathlib.Path(sys.prefix)
IGNORED = shutil.ignore_patterns(".venv", "build", "install", "log", ".git", "__pycache__", "*.so", "msg",
                                 "demo_out", "*.egg-info", ".pytest_cache")


def test_colcon_build_installs_one_package_with_interface_and_modules(tmp_path, ros_env):
    src = tmp_path / "src" / "syncvp_ros"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    shutil.copytree(ROOT / "msg", src / "msg")  # the interface sources (the ignore above drops generated msg/)
    env = dict(ros_env, CMAKE_PREFIX_PATH=str(VENV), AMENT_PREFIX_PATH=str(VENV))
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "build", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
         "-DBUILD_TESTING=OFF"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    install = tmp_path / "install" / "syncvp_ros"
    assert (install / "share" / "syncvp_ros" / "package.xml").is_file()
    assert (install / "share" / "syncvp_ros" / "launch" / "predictor.launch.py").is_file()
    assert (install / "share" / "syncvp_ros" / "config" / "predictor.yaml").is_file()
    assert os.access(install / "lib" / "syncvp_ros" / "predictor", os.X_OK)

    probe = ("import syncvp_ros, syncvp_core.data.transforms; from syncvp_ros.msg import RGBDPrediction; "
             "print(syncvp_ros.__file__); print(syncvp_core.__file__); print(RGBDPrediction.GUIDANCE_RGBD)")
    run = subprocess.run(["bash", "-c", f"source install/setup.bash && cd / && {sys.executable} -c '{probe}'"],
                         cwd=tmp_path, env={k: v for k, v in env.items() if k != "PYTHONPATH"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    pkg_file, core_file, mode = run.stdout.split()
    assert pkg_file.startswith(str(install)) and core_file.startswith(str(install))
    assert mode == "rgbd"
