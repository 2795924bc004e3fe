"""`syncvp_predictor`: RGB(-D) camera frames in, SyncVP RGB-D video predictions out (docs/node.md).

Thin wiring over the rclpy-free modules: subscription callbacks convert, validate and store frames
(sync_buffer); a window goes to a latest-only slot; one worker thread runs the model and publishes.
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from syncvp_core.checkpoint import CheckpointError, load_model, model_id
from syncvp_core.devices import resolve_device
from syncvp_core.image_msg import BadImage, depth_from_image, quoted, rgb_from_image
from syncvp_core.rollout import PredictionCancelled, RolloutPredictor
from syncvp_ros.depth_rep118 import conditioning_depth, prediction_depth
from syncvp_ros.diagnostics import InputMonitor, PredictorStats, Throttle, diagnostic_array
from syncvp_ros.handover import LatestSlot
from syncvp_ros.image_conversion import array_to_image
from syncvp_ros.model_tensors import check_usable_size, rgb_to_uint8, window_to_tensors
from syncvp_ros.mosaic import mosaic
from syncvp_ros.msg import RGBDPrediction
from syncvp_ros.parameters import SPECS, PredictorParams, descriptor, unknown_parameters, validate
from syncvp_ros.point_cloud import cloud_step_index, point_cloud
from syncvp_ros.prediction_message import prediction_message, scale_camera_info
from syncvp_ros.ros_time import ns_to_time, stamp_ns
from syncvp_ros.sync_buffer import DEPTH, MODALITIES, RGB, Frame, Rejected, SyncBuffer, SyncConfig, Window

NODE_NAME = "syncvp_predictor"
TOPICS = {"rgb": "~/input/rgb", "depth": "~/input/depth", "camera_info": "~/input/camera_info",
          "prediction": "~/output/prediction", "cloud": "~/output/cloud", "mosaic": "~/debug/mosaic",
          "diagnostics": "/diagnostics"}
LOG_THROTTLE_S = 5.0


class StartupError(RuntimeError):
    """The node cannot start; main() prints the one-line reason and exits non-zero."""


def _qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                      else ReliabilityPolicy.BEST_EFFORT)


class PredictorNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._warn_unknown_parameters()
        try:
            self.params = p = self._declare_parameters()
            self._load_model(p)
            self.buffer = SyncBuffer(self._sync_config(p))
        except StartupError:
            self.destroy_node()
            raise
        self.slot = LatestSlot()
        self.monitors = {m: InputMonitor(m) for m in MODALITIES}
        self._camera_info: CameraInfo | None = None
        self._throttle = Throttle(LOG_THROTTLE_S)
        self._predictor_key = None
        self._predictor: RolloutPredictor | None = None
        self._last_mode = "none"
        self._stopping = threading.Event()  # asked between DDIM steps: shutdown does not wait for a long rollout
        self._timing: dict[str, float | None] = {"inference": None, "publish": None, "age": None}

        in_qos, out_qos = _qos(p.input_reliability, p.input_depth), _qos(p.output_reliability, p.output_depth)
        self.create_subscription(Image, TOPICS["rgb"], lambda m: self._on_frame(RGB, m), in_qos)
        self.create_subscription(Image, TOPICS["depth"], lambda m: self._on_frame(DEPTH, m), in_qos)
        self.create_subscription(CameraInfo, TOPICS["camera_info"], self._on_camera_info, in_qos)
        self.prediction_pub = self.create_publisher(RGBDPrediction, TOPICS["prediction"], out_qos)
        self.cloud_pub = self.create_publisher(PointCloud2, TOPICS["cloud"], out_qos)
        self.mosaic_pub = self.create_publisher(Image, TOPICS["mosaic"], out_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"], 10)
        # Diagnostics on the steady clock: a paused simulation must still be reported (as stale inputs).
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        if p.prediction_period > 0:
            self.create_timer(p.prediction_period, lambda: self._post_window(self._now()))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._worker = threading.Thread(target=self._run_worker, name="syncvp_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {self.model_id} on {self.device} ({self.resolution}x{self.resolution}, "
            f"{self.model.cfg.cond_frames} conditioning frames); parameters: {p}")

    def _load_model(self, p: PredictorParams) -> None:
        try:
            device = resolve_device(p.device, warn=self.get_logger().warning)
            self.model = load_model(p.checkpoint, device)
        except (ValueError, CheckpointError) as e:
            raise StartupError(str(e)) from None
        if p.cpu_threads > 0:
            torch.set_num_threads(p.cpu_threads)
        # a string: diagnostics report it as the hardware id
        self.device, self.model_id, self.resolution = str(device), model_id(self.model), self.model.cfg.resolution

    # ---- parameters ------------------------------------------------------------------------------------------
    def _warn_unknown_parameters(self) -> None:
        # A misspelt key in a params file (horizn: 12) would otherwise apply nowhere and say nothing.
        declared = {spec.name for spec in SPECS} | set(self._parameters)
        unknown = unknown_parameters(list(self._parameter_overrides), declared)
        if unknown:
            self.get_logger().warning(f"ignoring unknown parameter(s): {', '.join(unknown)}")

    def _declare_parameters(self) -> PredictorParams:
        try:
            for spec in SPECS:
                self.declare_parameter(spec.name, spec.default, descriptor(spec))
        except ParameterException as e:
            raise StartupError(f"invalid parameter: {' '.join(str(e).split())}") from None
        try:
            return PredictorParams.from_values(self._values())
        except ValueError as e:
            raise StartupError(f"invalid parameters: {e}") from None

    def _values(self, changes: list[Parameter] = ()) -> dict:
        values = {spec.name: self.get_parameter(spec.name).value for spec in SPECS}
        values.update({c.name: c.value for c in changes if c.name in values})
        return values

    def _check_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        errors = validate(self._values(changes))
        return SetParametersResult(successful=not errors, reason="; ".join(errors))

    def _apply_parameters(self, _changes: list[Parameter]) -> None:
        # The worker reads self.params once per window, so one assignment swaps the whole set.
        self.params = PredictorParams.from_values(self._values())
        self.buffer.reconfigure(self._sync_config(self.params))

    def _sync_config(self, p: PredictorParams) -> SyncConfig:
        cond = self.model.cfg.cond_frames
        if p.buffer_size < cond:
            raise StartupError(f"buffer_size {p.buffer_size} < the model's {cond} conditioning frames")
        return SyncConfig(cond_frames=cond, capacity=p.buffer_size, sync_slop_ns=int(p.sync_slop * 1e9),
                          stale_timeout_ns={RGB: int(p.stale_timeout_rgb * 1e9),
                                            DEPTH: int(p.stale_timeout_depth * 1e9)})

    # ---- inputs (executor thread: store only) ----------------------------------------------------------------
    def _now(self) -> int:
        now = self.get_clock().now().nanoseconds
        if self.buffer.observe_clock(now):
            self.slot.discard()
            for monitor in self.monitors.values():
                monitor.reset_timeline()
            self.get_logger().warning("node clock jumped backwards (bag loop?): ring buffers cleared")
        return now

    def _on_frame(self, modality: str, msg: Image) -> None:
        now = self._now()
        monitor = self.monitors[modality]
        if now == 0:  # use_sim_time before the first /clock: staleness cannot be judged yet
            monitor.ignore_before_clock()
            self._log_throttled("no_clock", "waiting for /clock (use_sim_time is set)")
            return
        p = self.params
        stamp = stamp_ns(msg.header.stamp)
        monitor.arrived(stamp, self.buffer.config.stale_timeout_ns[modality])
        try:
            data = (rgb_from_image(msg) if modality == RGB else
                    depth_from_image(msg, p.depth_uint16_scale, p.depth_min, p.depth_max, far_as_inf=True))
            check_usable_size(data, self.resolution)
            self.buffer.push(modality, Frame(stamp, msg.header.frame_id, data), now)
        except (BadImage, Rejected) as e:
            monitor.reject(e.kind, str(e))
            self._log_throttled((modality, e.kind), f"rejected {modality} message ({e.kind}): {e}")
            return
        monitor.accept(stamp)
        rgb, depth = self.buffer.newest(RGB), self.buffer.newest(DEPTH)
        if rgb and depth and rgb.frame_id != depth.frame_id:
            self.get_logger().warning(f"RGB frame_id {quoted(rgb.frame_id)} != depth frame_id "
                                      f"{quoted(depth.frame_id)}: the depth image is assumed registered to the "
                                      "RGB camera", once=True)
        if p.prediction_period == 0:
            self._post_window(now)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _post_window(self, now: int) -> None:
        window = self.buffer.next_window(now)
        if window is not None:
            self.slot.post((window, self._camera_info))

    # ---- inference (worker thread) ---------------------------------------------------------------------------
    def _run_worker(self) -> None:
        while (job := self.slot.take()) is not None:
            try:
                self._predict_and_publish(*job)
            except PredictionCancelled:  # shutdown() asked the rollout to stop
                self.slot.done("dropped")
                return
            except Exception as e:  # noqa: BLE001 - one failed window must not stop the node
                self.slot.done("failed")
                if not self.context.ok():  # SIGINT shut the context down under a publish: just stop
                    return
                self._log_throttled("inference", f"inference failed: {type(e).__name__}: {e}", error=True)
            else:
                self.slot.done("predicted")

    def _predictor_for(self, p: PredictorParams) -> RolloutPredictor:
        key = (p.sampler, p.ddim_steps, p.eta, p.guidance_scale, p.mean_of)
        if key != self._predictor_key:
            self._predictor = RolloutPredictor(self.model, steps=p.ddim_steps or None, eta=p.eta,
                                               guidance_scale=p.guidance_scale, sampler=p.sampler or None,
                                               samples=p.mean_of)
            self._predictor_key = key
        return self._predictor

    def _predict_and_publish(self, window: Window, camera_info: CameraInfo | None) -> None:
        p = self.params
        start = time.perf_counter()
        rgb, _ = window_to_tensors([f.data for f in window.rgb], [], self.resolution)
        depth, holes = (conditioning_depth([f.data for f in window.depth], self.resolution) if window.depth
                        else (None, None))
        generator = torch.Generator(self.device).manual_seed(p.seed) if p.seed >= 0 else None
        pred = self._predictor_for(p).predict(rgb=rgb, depth=depth, horizon=p.horizon, generator=generator,
                                              should_stop=self._stopping.is_set)
        pred_rgb = rgb_to_uint8(pred.rgb[0])
        pred_depth = prediction_depth(pred.depth[0].float().cpu().numpy(), holes, p.depth_min, p.depth_max,
                                      self.model.cfg.depth_far)
        inferred = time.perf_counter()
        steps = p.ddim_steps or self.model.cfg.diffusion.sampling_steps
        info = scale_camera_info(camera_info, self.resolution) if camera_info is not None else None
        msg = prediction_message(window, pred_rgb, pred_depth, info, steps, self.model_id)
        self.prediction_pub.publish(msg)
        published = time.perf_counter()
        if p.cloud_enable:
            self._publish_cloud(msg, pred_rgb, pred_depth, info, p.cloud_step)
        self._timing = {"inference": inferred - start, "publish": published - inferred,
                        "age": (self.get_clock().now().nanoseconds - window.newest.stamp_ns) * 1e-9}
        if window.mode.value != self._last_mode:
            self.get_logger().info(f"guidance mode {self._last_mode} -> {window.mode.value}")
            self._last_mode = window.mode.value
        if p.debug_mosaic:
            cond_rgb = rgb_to_uint8(rgb[0]) if rgb is not None else None
            cond_depth = depth[0].numpy() if depth is not None else None
            image = array_to_image(mosaic(cond_rgb, cond_depth, pred_rgb, pred_depth, self.resolution,
                                          p.depth_min, p.depth_max), "rgb8")
            image.header = msg.header
            self.mosaic_pub.publish(image)

    def _publish_cloud(self, msg: RGBDPrediction, rgb, depth, info: CameraInfo | None, step: int) -> None:
        if info is None:
            self.get_logger().warning("no usable CameraInfo on ~/input/camera_info: ~/output/cloud is not published",
                                      once=True)
            return
        k = cloud_step_index(step, len(depth))
        # stamped at the predicted frame's time: the cloud shows where the scene is expected to be then
        header = Header(stamp=ns_to_time(stamp_ns(msg.header.stamp) + stamp_ns(msg.time_offsets[k])),
                        frame_id=info.header.frame_id or msg.header.frame_id)
        self.cloud_pub.publish(point_cloud(depth[k], rgb[k], info.k, header))

    # ---- diagnostics and logging -----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = self._now()
        selection = self.buffer.select(now)
        if selection.both_stale:
            self._log_throttled("both_stale", f"no prediction: {selection.reason}", error=True)
        stats = PredictorStats(selection, self._last_mode, self.slot.counters(), self._timing["inference"],
                               self._timing["publish"], self._timing["age"], self.device, self.model_id,
                               self.buffer.clock_jumps)
        inputs = [self.monitors[m].snapshot(self.buffer, now) for m in MODALITIES]
        self.diag_pub.publish(diagnostic_array(self.get_fully_qualified_name().lstrip("/"),
                                               self.get_clock().now().to_msg(), inputs, stats, self.device))

    def _log_throttled(self, key, text: str, error: bool = False) -> None:
        if not self._throttle.allow(key, time.monotonic()):
            return
        # Two call sites: rclpy refuses one call site logging at changing severities.
        if error:
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    def shutdown(self) -> None:
        """Stop the worker (a running rollout stops at its next DDIM step) and free the model and its GPU memory."""
        self._stopping.set()
        self.slot.close()
        self._worker.join(timeout=10.0)
        if not self._worker.is_alive():
            self._predictor = self.model = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def main(args=None) -> int:
    try:
        rclpy.init(args=args)
    except Exception as e:  # noqa: BLE001 - e.g. an unreadable --params-file: one line, non-zero exit
        print(f"{NODE_NAME}: cannot start ROS: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    try:
        node = PredictorNode()
    except StartupError as e:
        print(f"{NODE_NAME}: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
