"""pip / venv set-up of syncvp_ros (the colcon set-up uses CMakeLists.txt); metadata lives in setup.cfg."""
from setuptools import setup

setup()
