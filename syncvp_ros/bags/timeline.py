"""The guidance-mode timeline of recorded predictions (`syncvp-bag eval --predictions`, the demo's report)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from syncvp_core.modalities import CONDITIONING_MODES


def plot_timeline(records: list, start_ns: int, path: Path, shade: list[tuple[float, float]] = ()) -> Path:
    """Guidance mode of each prediction (an `evaluation.PredictionRecord`: its `mode` and `stamp_ns`) against its stamp (seconds from the input bag's start), in recording
    order: a stamp going backwards starts a new loop pass (drawn slightly higher); `shade` marks e.g. a dropout.
    With looped playback, record with wall time: sim-time log times repeat per pass and mix the passes."""
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.subplots()
    for lo, hi in shade:
        ax.axvspan(lo, hi, color="tab:red", alpha=0.15, label="dropout" if lo == shade[0][0] else None)
    passes, previous = [[]], None
    for r in records:
        if previous is not None and r.stamp_ns < previous:
            passes.append([])
        passes[-1].append(r)
        previous = r.stamp_ns
    for i, group in enumerate(passes):
        x = [(r.stamp_ns - start_ns) / 1e9 for r in group]
        y = [CONDITIONING_MODES.index(r.mode) + 0.12 * i if r.mode in CONDITIONING_MODES else -1 for r in group]
        ax.plot(x, y, marker="o", linestyle="-" if len(passes) == 1 else ":", label=f"pass {i + 1}")
    ax.set_yticks(range(len(CONDITIONING_MODES)), [f"{m} guidance" for m in CONDITIONING_MODES])
    ax.set_ylim(-0.5, len(CONDITIONING_MODES) - 0.3)
    ax.set_xlabel("prediction stamp (s from bag start)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper right")
    fig.savefig(path, dpi=100)
    return Path(path)
