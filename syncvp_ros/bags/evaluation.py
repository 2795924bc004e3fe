"""`syncvp-bag eval --predictions`: a recorded RGBDPrediction topic scored against the bag that was played.

(Offline, `syncvp-bag eval` without --predictions is syncvp-eval's pipeline itself on the bag's clips, read by
syncvp_core's rosbag loader.)

`evaluate_predictions`: each prediction says when its frames are (header stamp +
time_offsets[k]); the input frame of each modality nearest to that time (within `slop`) is its ground truth,
centre-cropped and resized to the prediction's size exactly as the node prepares its input
(model_tensors.window_to_tensors). Copy-last repeats the input
frame at the newest conditioning stamp of each modality (the prediction's own stamp for a modality it did not
use). Metrics are syncvp-eval's (evaluation.frame_scores); the outputs are its files (metrics.json,
per-horizon plots, sample strip and GIF) plus the guidance-mode timeline (`timeline.plot_timeline`).

A damaged bag ends reading where it breaks: what was scored so far is written, then BagError is raised.
No rclpy: messages are deserialised with the rosbags type store.
"""
from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from syncvp_core.evaluation import plots
from syncvp_core.evaluation.scoring import COPY_LAST, EvaluationResult, depth_scoring_pixels, frame_scores
from syncvp_core.image_msg import BadImage, depth_from_image, image_to_array, rgb_from_image
from syncvp_core.modalities import CONDITIONING_MODES, MODALITIES
from syncvp_ros.bags.io import PREDICTION_TYPE, BagError, bag_info, read_messages, typestore
from syncvp_ros.bags.timeline import plot_timeline
from syncvp_ros.model_tensors import window_to_tensors
from syncvp_ros.ros_time import stamp_ns

PREDICTED = "syncvp"  # the node's output, named like syncvp-eval's model method
METHODS = (PREDICTED, COPY_LAST)


def nearest(stamps: list[int], target: int, slop_ns: int) -> int | None:
    """The stamp of sorted `stamps` nearest to `target`, if within `slop_ns`."""
    i = bisect.bisect_left(stamps, target)
    best = min(stamps[max(i - 1, 0):i + 1], key=lambda s: abs(s - target), default=None)
    return best if best is not None and abs(best - target) <= slop_ns else None


@dataclass(frozen=True)
class PredictionRecord:
    """What one prediction claims, without its images."""

    received_ns: int  # log time in the predictions bag (the recorder's clock)
    stamp_ns: int
    mode: str
    rgb_cond: tuple[int, ...]
    depth_cond: tuple[int, ...]
    targets: tuple[int, ...]  # stamp + each time offset
    model_id: str
    size: int

    @property
    def cond_stamps(self) -> tuple[int, ...]:
        return self.rgb_cond or self.depth_cond

    def last_conditioning(self, modality: str) -> int:
        used = self.rgb_cond if modality == "rgb" else self.depth_cond
        return used[-1] if used else self.stamp_ns


def _record(msg, received_ns: int) -> PredictionRecord:
    stamp = stamp_ns(msg.header.stamp)
    return PredictionRecord(received_ns, stamp, msg.guidance_mode,
                            tuple(stamp_ns(t) for t in msg.rgb_conditioning_stamps),
                            tuple(stamp_ns(t) for t in msg.depth_conditioning_stamps),
                            tuple(stamp + stamp_ns(d) for d in msg.time_offsets), msg.model_id,
                            int(msg.rgb[0].width) if len(msg.rgb) else 0)


def read_predictions(path, topic: str) -> Iterator[tuple[PredictionRecord, object]]:
    topics = bag_info(path).topics
    if topic not in topics:
        raise ValueError(f"{path}: no topic {topic}; its topics are: {', '.join(sorted(topics)) or 'none'}")
    store = typestore()
    for m in read_messages(path, [topic]):
        if m.msgtype != PREDICTION_TYPE:
            raise ValueError(f"{path}: {topic} carries {m.msgtype}, not {PREDICTION_TYPE}")
        msg = store.deserialize_cdr(m.rawdata, m.msgtype)
        yield _record(msg, m.timestamp), msg


def _depth_metres(msg) -> np.ndarray:
    """Depth in metres with NaN invalid; a frame without any valid pixel is all NaN, not an error."""
    try:
        return depth_from_image(msg, 0.001, 0.0, float("inf"))
    except BadImage as err:
        if err.kind != "invalid_depth":
            raise
        return np.full((msg.height, msg.width), np.nan, np.float32)


@dataclass
class InputFrames:
    """Input frames by stamp at the model size: rgb 3×S×S in [0, 1], depth S×S metres."""

    frames: dict[str, dict[int, torch.Tensor]] = field(default_factory=lambda: {m: {} for m in MODALITIES})
    start_ns: int = 0

    @cached_property
    def _sorted(self) -> dict[str, list[int]]:  # once everything is loaded
        return {m: sorted(f) for m, f in self.frames.items()}

    def stamps(self, modality: str) -> list[int]:
        return self._sorted[modality]

    def stack(self, modality: str, stamps) -> torch.Tensor:
        return torch.stack([self.frames[modality][s] for s in stamps])


def load_input_frames(path, topics: dict[str, str], wanted: list[int], slop_ns: int, size: int) -> InputFrames:
    """Decodes only the frames within `slop_ns` of a wanted stamp (sorted), so a long recording stays cheap."""
    store = typestore()
    info = bag_info(path)
    out = InputFrames(start_ns=info.start_ns)
    by_topic = {topic: modality for modality, topic in topics.items()}
    missing = sorted(set(topics.values()) - set(info.topics))
    if missing:
        raise ValueError(f"{path}: no topic {', '.join(missing)} (see syncvp-bag info)")
    for m in read_messages(path, list(by_topic)):
        msg = store.deserialize_cdr(m.rawdata, m.msgtype)
        stamp = stamp_ns(msg.header.stamp)
        if nearest(wanted, stamp, slop_ns) is None:
            continue
        modality = by_topic[m.topic]
        if modality == "rgb":
            rgb, _ = window_to_tensors([rgb_from_image(msg)], [], size)
            out.frames["rgb"][stamp] = rgb[0, 0]
        else:
            _, depth = window_to_tensors([], [_depth_metres(msg)], size)
            out.frames["depth"][stamp] = depth[0, 0]
    return out


def _prediction_tensors(msg, far: float) -> dict[str, torch.Tensor]:
    """A recorded prediction's frames; its REP 118 +inf ("beyond range") depth is scored as the model's far
    end, where the node put it (not left out, which would hide the error), and its NaN (unknown) is left out."""
    rgb = torch.stack([torch.from_numpy(rgb_from_image(im)).permute(2, 0, 1).float() / 255 for im in msg.rgb])
    depth = torch.stack([torch.from_numpy(image_to_array(im)) for im in msg.depth])
    return {"rgb": rgb, "depth": torch.where(torch.isposinf(depth), torch.tensor(far, dtype=depth.dtype), depth)}


@dataclass
class _Scores:
    """Per-step scores, one row per prediction; NaN where a step (or a whole prediction) had no ground truth."""

    predictions: int
    horizon: int
    rows: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)

    def add(self, index: int, method: str, modality: str, steps: list[int], scores: dict[str, torch.Tensor]):
        for metric, value in scores.items():
            table = self.rows.setdefault((method, modality, metric),
                                         np.full((self.predictions, self.horizon), np.nan))
            table[index, steps] = value.reshape(-1).numpy()


def _score(index: int, record: PredictionRecord, predicted: dict[str, torch.Tensor], frames: InputFrames,
           scores: _Scores, slop_ns: int, near: float, far: float, lpips) -> dict | None:
    """Adds one prediction's per-step scores; returns its GIF sample when every frame had ground truth."""
    sample = {"ground-truth": {}, PREDICTED: {}, COPY_LAST: {}}
    targets = record.targets[:scores.horizon]
    for modality in MODALITIES:
        stamps = frames.stamps(modality)
        matched = [nearest(stamps, t, slop_ns) for t in targets]
        steps = [k for k, s in enumerate(matched) if s is not None]
        last = nearest(stamps, record.last_conditioning(modality), slop_ns)
        if not steps:
            continue
        truth = frames.stack(modality, [matched[k] for k in steps])[None]
        videos = {PREDICTED: predicted[modality][steps][None]}
        if last is not None:
            copy = videos[COPY_LAST] = frames.frames[modality][last].expand_as(truth[0])[None]
        # as in syncvp-eval, both methods are scored on the same depth pixels: where the truth is valid and in
        # range and each method has a value (copy-last has none where its source frame had a hole)
        pixels = depth_scoring_pixels(truth, None, videos.values(), near, far) if modality == "depth" else None
        for method, video in videos.items():
            scores.add(index, method, modality, steps, frame_scores(modality, video, truth, pixels, near, far, lpips))
        cond = [nearest(stamps, s, slop_ns) for s in record.cond_stamps]
        if len(steps) == len(targets) and last is not None and None not in cond:
            sample["ground-truth"][modality] = torch.cat([frames.stack(modality, cond), truth[0]])
            sample[PREDICTED][modality] = predicted[modality][:len(targets)]
            sample[COPY_LAST][modality] = copy[0]
    return sample if all(len(v) == 2 for v in sample.values()) else None


def _by_mode(records: list[PredictionRecord], result: EvaluationResult) -> dict:
    """Mean of every metric of the node's predictions, split by the guidance mode each one used."""
    modes = np.array([r.mode for r in records])
    out = {}
    for mode in CONDITIONING_MODES:
        rows = modes == mode
        if not rows.any():
            continue
        entry = out.setdefault(mode, {"predictions": int(rows.sum())})
        for (method, modality, metric), values in result.frames.items():
            if method == PREDICTED:
                chosen = values[rows]
                mean = float(np.nanmean(chosen)) if np.isfinite(chosen).any() else None
                entry.setdefault(modality, {})[metric] = mean
    return out


def depth_range(checkpoint: str | None, model_ids: set[str]) -> tuple[float, float]:
    """[near, far] of the model that made the predictions (its depth rendering for the image metrics): the
    checkpoint's config, else the preset named in the messages' model_id."""
    from syncvp_core.checkpoint import load_model, model_id_config
    from syncvp_core.config import PRESETS, get_config

    if checkpoint:
        cfg = load_model(checkpoint).cfg
    else:
        names = {model_id_config(m) for m in model_ids}
        if len(names) != 1 or not names <= set(PRESETS):
            raise ValueError(f"predictions come from model(s) {', '.join(sorted(model_ids))}: pass --checkpoint "
                             f"to say which depth range they use")
        cfg = get_config(names.pop())
    return cfg.depth_near, cfg.depth_far


def evaluate_predictions(input_bag, predictions_bag, topics: dict[str, str], prediction_topic: str, out: Path,
                         checkpoint: str | None = None, slop: float = 0.02, lpips=None, skipped: dict | None = None,
                         shade: list[tuple[float, float]] = (), progress=None) -> dict:
    """Scores every recorded prediction and writes the outputs to `out`; returns the metrics.json content."""
    slop_ns = round(slop * 1e9)
    records, errors = [], []
    try:
        for record, _ in read_predictions(predictions_bag, prediction_topic):
            records.append(record)
    except BagError as err:
        errors.append(str(err))
    if not records:
        raise (BagError(errors[0]) if errors else
               ValueError(f"{predictions_bag}: no messages on {prediction_topic} (see syncvp-bag info)"))
    near, far = depth_range(checkpoint, {r.model_id for r in records})
    size = records[0].size
    horizon = max(len(r.targets) for r in records)
    wanted = sorted({s for r in records for s in (*r.targets, *r.rgb_cond, *r.depth_cond, r.stamp_ns)})
    try:
        frames = load_input_frames(input_bag, topics, wanted, slop_ns, size)
    except BagError as err:
        raise BagError(f"{err} (no prediction scored)") from None
    scores, sample = _Scores(len(records), horizon), None
    # islice: never touch the damaged tail where the first pass stopped
    for index, (record, msg) in enumerate(islice(read_predictions(predictions_bag, prediction_topic), len(records))):
        found = _score(index, record, _prediction_tensors(msg, far), frames, scores, slop_ns, near, far, lpips)
        sample = sample or found
        if progress:
            progress(1)
    if not scores.rows:
        raise ValueError(f"no prediction of {predictions_bag} matches a frame of {input_bag} within {slop:g} s "
                         f"(are these the bag played and the recording of its predictions?)")
    cond_frames = len(records[0].cond_stamps)
    result = EvaluationResult(cond_frames, horizon, MODALITIES, METHODS, len(records), scores.rows, {},
                              sample or {}, {**(skipped or {}), "fvd": "not computed for recorded predictions"})
    out.mkdir(parents=True, exist_ok=True)
    summary = result.to_dict()
    summary.update({
        "input_bag": str(input_bag), "predictions_bag": str(predictions_bag), "prediction_topic": prediction_topic,
        "topics": topics, "slop_s": slop, "depth_near": near, "depth_far": far,
        "model_ids": sorted({r.model_id for r in records}),
        "guidance_modes": {m: sum(r.mode == m for r in records) for m in CONDITIONING_MODES},
        "by_guidance_mode": _by_mode(records, result),
        "timeline": [{"stamp_s": (r.stamp_ns - frames.start_ns) / 1e9, "mode": r.mode} for r in records],
        "complete": not errors, "errors": errors})
    files = [p.name for p in plots.plot_per_horizon(result, out)]
    if sample:
        files.append(plots.sample_strip(sample, METHODS, cond_frames, near, far, out / "sample_strip.png").name)
        files.append(plots.sample_gif(sample, METHODS, cond_frames, near, far, out / "sample.gif").name)
    files.append(plot_timeline(records, frames.start_ns, out / "guidance_timeline.png", shade).name)
    summary["files"] = ["metrics.json", *files]
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if errors:
        raise BagError(f"{errors[0]} (scored the {len(records)} predictions before it; outputs in {out})")
    return summary
