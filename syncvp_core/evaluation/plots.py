"""Pictures of an evaluation: per-horizon metric curves (PNG), a sample strip (PNG) and an animated GIF of
ground truth vs predictions, RGB above colour-mapped depth.

Depth is coloured by normalised inverse depth over the model's [near, far] range (near bright, far dark, the
same mapping the model sees), with invalid pixels black. Uses matplotlib's object API only (no pyplot state).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from syncvp_core.depth import depth_to_model
from syncvp_core.evaluation.scoring import EvaluationResult

DEPTH_COLORMAP = "turbo"
LINE_STYLES = ("-", "--", ":", "-.")  # so that methods with equal scores stay visible on top of each other
METRIC_LABELS = {"ssim": "SSIM ↑", "psnr": "PSNR (dB) ↑", "lpips": "LPIPS ↓", "abs_rel": "AbsRel ↓",
                 "rmse": "RMSE (m) ↓", "delta1": "δ<1.25 ↑"}


def rgb_to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """`...×3×H×W` in [0, 1] -> `...×H×W×3` uint8."""
    return (rgb.clamp(0, 1) * 255).round().byte().movedim(-3, -1).cpu().numpy()


def colorize_depth(depth_m: torch.Tensor, near: float, far: float) -> np.ndarray:
    """`...×H×W` metres -> `...×H×W×3` uint8, coloured by inverse depth; invalid pixels black."""
    x, valid = depth_to_model(depth_m.cpu(), near, far)
    colours = colormaps[DEPTH_COLORMAP]((x.numpy() + 1) / 2)[..., :3]
    colours[~valid.numpy()] = 0
    return (colours * 255).round().astype(np.uint8)


def plot_per_horizon(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """One PNG per modality, `per_horizon_<modality>.png`: each metric against the horizon step, one line per method."""
    paths = []
    steps = np.arange(1, result.horizon + 1)
    for modality in result.modalities:
        metrics = result.metric_names(modality)
        fig = Figure(figsize=(4 * len(metrics), 3.2), layout="constrained")
        for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
            for method, style in zip(result.methods, itertools.cycle(LINE_STYLES)):
                ax.plot(steps, result.per_step(method, modality, metric), style, marker=".", label=method)
            ax.set_title(METRIC_LABELS.get(metric, metric))
            ax.set_xlabel("predicted frame")
            ax.grid(alpha=0.3)
        fig.axes[0].legend(fontsize="small")
        suffix = " (image metrics on inverse depth rendered grey)" if modality == "depth" else ""
        fig.suptitle(f"{modality}: mean over {result.clips} clips{suffix}")
        path = Path(out_dir) / f"per_horizon_{modality}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def _frame_label(t: int, cond_frames: int) -> str:
    """t+0 is the last observed frame, t+1 the first predicted one."""
    return f"t{t - cond_frames + 1:+d}"


def _panels(sample: dict, methods, cond_frames: int, near: float, far: float) -> dict[str, np.ndarray]:
    """Row name -> T×H×W×3 uint8 video over the observed + predicted frames; each method's row starts with the
    observed frames it was given."""
    truth = sample["ground-truth"]
    panels = {}
    for modality, render in (("rgb", rgb_to_uint8), ("depth", lambda d: colorize_depth(d, near, far))):
        panels[f"ground-truth {modality}"] = render(truth[modality])
        for name in methods:
            panels[f"{name} {modality}"] = render(torch.cat([truth[modality][:cond_frames], sample[name][modality]]))
    return panels


def sample_strip(sample: dict, methods, cond_frames: int, near: float, far: float, path: Path,
                 columns: int = 8) -> Path:
    """PNG grid: rows = ground truth and each method, RGB then depth; columns = frames: the last observed one
    (t+0), then predicted frames spread over the horizon."""
    panels = _panels(sample, methods, cond_frames, near, far)
    length = len(next(iter(panels.values())))
    picks = np.unique(np.linspace(cond_frames, length - 1, max(1, columns - 1)).round().astype(int))
    frames = [cond_frames - 1, *picks.tolist()]
    rows = [np.concatenate([video[t] for t in frames], axis=1) for video in panels.values()]
    height, width = next(iter(panels.values())).shape[1:3]
    fig = Figure(figsize=(1.1 * len(frames) + 2, 1.1 * len(rows) + 0.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(np.concatenate(rows, axis=0))
    ax.set_yticks([height * (i + 0.5) for i in range(len(rows))], list(panels), fontsize="small")
    ax.set_xticks([width * (i + 0.5) for i in range(len(frames))],
                  [_frame_label(t, cond_frames) for t in frames],
                  fontsize="small")
    ax.tick_params(length=0)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # the long row names need the room
    return Path(path)


def sample_gif(sample: dict, methods, cond_frames: int, near: float, far: float, path: Path,
               fps: float = 4.0, scale: int = 2) -> Path:
    """Animated GIF: one column per video (ground truth, each method), RGB above depth, named in a header;
    the frame counter turns red once frames are predicted."""
    panels = _panels(sample, methods, cond_frames, near, far)
    names = ["ground-truth", *methods]
    length, height, width = next(iter(panels.values())).shape[:3]
    header = 14
    images = []
    for t in range(length):
        columns = [np.concatenate([panels[f"{n} rgb"][t], panels[f"{n} depth"][t]], axis=0) for n in names]
        grid = Image.fromarray(np.concatenate(columns, axis=1))
        grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
        canvas = Image.new("RGB", (grid.width, grid.height + header), "white")
        canvas.paste(grid, (0, header))
        draw = ImageDraw.Draw(canvas)
        for i, name in enumerate(names):
            draw.text((i * width * scale + 2, 1), name if i else f"{name} {_frame_label(t, cond_frames)}",
                      fill="black" if t < cond_frames else "red")
        images.append(canvas)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Path(path)
