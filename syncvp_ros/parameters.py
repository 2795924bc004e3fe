"""The predictor node's parameters: one table gives names, defaults, descriptors (ranges, read-only) and checks.

rclpy enforces the numeric ranges and read-only flags from the descriptors; `validate` adds what descriptors
cannot express (choices, cross-parameter rules) and runs both at start-up and on every set. No rclpy here.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from syncvp_core.config import SAMPLERS
from syncvp_core.devices import DEVICE_NAME

RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    read_only: bool = False
    choices: str = ""  # human description of the allowed strings, checked by `validate`


SPECS = (
    Spec("checkpoint", "bundled", "Model to load: a .safetensors path (ours or converted by syncvp-import-reference), "
         "a directory of the authors' released .pth files, 'preset:<name>' (random init) or 'bundled'", read_only=True),
    Spec("device", "auto", "Inference device; auto = CUDA if available, else CPU with a warning", read_only=True,
         choices="auto, cpu, cuda or cuda:<index>"),
    Spec("cpu_threads", 1, "Torch CPU threads for inference (0 = torch's default; 1 is fastest for the tiny "
         "model, whose small ops cost more to split than to run)", (0, 256), read_only=True),
    Spec("horizon", 28, "Predicted frames per prediction", (1, 256)),
    Spec("sampler", "", "Sampler: ddim or dpmsolver (DPM-Solver++, deterministic, fewer steps; empty = the "
         "checkpoint's configured sampler)", choices="ddim, dpmsolver or empty"),
    Spec("ddim_steps", 0, "DDIM steps per 8-frame chunk (0 = the checkpoint's configured steps)", (0, 1000)),
    Spec("eta", 1.0, "DDIM eta (0 = deterministic sampling)", (0.0, 1.0)),
    Spec("guidance_scale", 0.0, "Modality guidance scale (0 = off)", (0.0, 20.0)),
    Spec("mean_of", 1, "Point estimate: the mean of this many predictions drawn in one batch (1 = one sample; "
         "K costs about K times the compute)", (1, 16)),
    Spec("seed", -1, "Noise seed, re-applied per prediction (-1 = random)", (-1, 2**31 - 1)),
    Spec("sync_slop", 0.02, "Largest RGB/depth stamp difference of a pair [s]", (0.0, 1.0)),
    Spec("stale_timeout.rgb", 0.5, "RGB is stale when its newest stamp is older than this on the node clock [s]",
         (0.01, 60.0)),
    Spec("stale_timeout.depth", 0.5, "Depth is stale when its newest stamp is older than this on the node clock [s]",
         (0.01, 60.0)),
    Spec("prediction_period", 0.0, "Select a window every this many seconds of node time (0 = on every new "
         "window)", (0.0, 3600.0), read_only=True),
    Spec("buffer_size", 8, "Ring-buffer length per modality [frames]", (1, 100), read_only=True),
    Spec("depth.uint16_scale", 0.001, "Metres per unit of 16UC1 depth (0.001 = millimetres)", (1e-6, 1.0)),
    Spec("depth.min", 0.1, "Nearest valid depth [m]; nearer pixels become invalid (NaN)", (0.0, 10000.0)),
    Spec("depth.max", 1000.0, "Farthest valid depth [m]; farther pixels become invalid (NaN)", (0.001, 10000.0)),
    Spec("qos.input.reliability", "best_effort", "Input subscriptions' reliability (REP 2003: best_effort)",
         read_only=True, choices="best_effort or reliable"),
    Spec("qos.input.depth", 5, "Input subscriptions' KEEP_LAST depth", (1, 1000), read_only=True),
    Spec("qos.output.reliability", "reliable", "Publishers' reliability (REP 2003: reliable)", read_only=True,
         choices="best_effort or reliable"),
    Spec("qos.output.depth", 2, "Publishers' KEEP_LAST depth", (1, 1000), read_only=True),
    Spec("debug.mosaic", False, "Publish ~/debug/mosaic (conditioning + predicted RGB and colour-mapped depth)"),
    Spec("cloud.enable", True, "Publish ~/output/cloud: one predicted frame as a PointCloud2 (needs CameraInfo)"),
    Spec("cloud.step", 0, "Predicted frame of ~/output/cloud, 1-based (0 = the last; beyond the horizon = the last)",
         (0, 256)),
    Spec("diagnostics_period", 1.0, "Period of /diagnostics [s, steady clock]", (0.05, 60.0), read_only=True),
)
DEFAULTS = {s.name: s.default for s in SPECS}


def descriptor(spec: Spec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only,
                            additional_constraints=f"one of: {spec.choices}" if spec.choices else "")
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


def validate(values: Mapping[str, Any]) -> list[str]:
    """Reasons the (complete) parameter set is invalid, beyond what rclpy checks from the descriptors."""
    errors = []
    if not DEVICE_NAME.fullmatch(str(values["device"])):
        errors.append(f"device {values['device']!r} is not one of: auto, cpu, cuda, cuda:<index>")
    if values["sampler"] not in ("", *SAMPLERS):
        errors.append(f"sampler {values['sampler']!r} is not one of: {', '.join(SAMPLERS)} or empty")
    for name in ("qos.input.reliability", "qos.output.reliability"):
        if values[name] not in RELIABILITIES:
            errors.append(f"{name} {values[name]!r} is not one of: {', '.join(RELIABILITIES)}")
    if not values["depth.min"] < values["depth.max"]:
        errors.append(f"depth.min ({values['depth.min']}) must be below depth.max ({values['depth.max']})")
    if not str(values["checkpoint"]).strip():
        errors.append("checkpoint is empty")
    return errors


@dataclass(frozen=True)
class PredictorParams:
    """Typed view of a validated parameter set."""

    checkpoint: str
    device: str
    cpu_threads: int
    horizon: int
    sampler: str
    ddim_steps: int
    eta: float
    guidance_scale: float
    mean_of: int
    seed: int
    sync_slop: float
    stale_timeout_rgb: float
    stale_timeout_depth: float
    prediction_period: float
    buffer_size: int
    depth_uint16_scale: float
    depth_min: float
    depth_max: float
    input_reliability: str
    input_depth: int
    output_reliability: str
    output_depth: int
    debug_mosaic: bool
    cloud_enable: bool
    cloud_step: int
    diagnostics_period: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "PredictorParams":
        errors = validate(values)
        if errors:
            raise ValueError("; ".join(errors))
        return cls(**{name.replace("qos.", "").replace(".", "_"): values[name] for name in DEFAULTS})


def unknown_parameters(given: list[str], declared: set[str]) -> list[str]:
    """One line per given name (e.g. from a params file) that nothing declares, with the nearest declared name."""
    lines = []
    for name in sorted(set(given) - declared):
        near = difflib.get_close_matches(name, sorted(declared), n=1)
        lines.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return lines
