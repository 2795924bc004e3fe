"""The bundled model's end-to-end recipe: data, the three stages within one wall-clock budget, export, evaluation.

    syncvp-train recipe --out build/bundled --budget 100m

Each stage is a `syncvp-train` process in its own run folder under --out; the budget is split over them by
STAGE_SHARES (the autoencoders are the ceiling of everything after them, so they get most of it) and each stage
gets its share as `--time-budget`, so its cosine ends when its time does. The two autoencoders, then the two
diffusion branches, run side by side with one thread each; the joint stage gets every thread. Running the recipe
again resumes: a finished stage (its summary.json written) is skipped, an interrupted one is resumed from its
last checkpoint, so a recipe stopped at any point continues where it was.

The per-stage settings are sized for a 2-core CPU; under torchrun on GPUs, run the same stages with
`syncvp-train STAGE` and larger batches (docs/training.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.modalities import MODALITIES

STAGE_SHARES = {"autoencoder": 0.55, "diffusion": 0.25, "joint": 0.12}  # the rest: caching, export, evaluation
COMMON = ["--max-steps", "100000", "--log-every", "20", "--val-every", "500", "--val-batches", "2",
          "--ckpt-every", "200", "--seed", "0"]
STAGE_ARGS = {
    "autoencoder": ["--batch-size", "4", "--lr", "5e-4", "--warmup-steps", "50", "--ema-decay", "0.998",
                    "--lpips-weight", "1.0", "--context-dropout", "0.1"],
    "diffusion": ["--batch-size", "16", "--lr", "3e-4", "--warmup-steps", "100", "--ema-decay", "0.999",
                  "--cond-dropout", "0.25", "--sample-steps", "25"],
    "joint": ["--batch-size", "16", "--lr", "1e-4", "--warmup-steps", "50", "--ema-decay", "0.999",
              "--sample-steps", "25"],
}
MODEL_FILE = "model.safetensors"


class RecipeError(RuntimeError):
    """A stage failed or an input is unusable; one line naming the stage and its log."""


@dataclass
class Recipe:
    out: Path
    budget_s: float
    model: str = "tiny"
    data: str | None = None  # training data spec; None: generate synthetic data into out/data
    test_data: str | None = None  # held-out spec (split "test"); None: generate it (another seed)
    sequences: int = 320  # generated training sequences (the last 20 form "val")
    test_sequences: int = 60
    frames: int = 30
    eval_samples: int = 60
    threads: int = 2
    extra: dict = field(default_factory=dict)  # per-stage extra flags (tests use it to shrink a run)


def run(recipe: Recipe, say=print) -> dict:
    """Run (or resume) the whole recipe; returns the summary also written to out/recipe.json."""
    out = recipe.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data, test_data = prepare_data(recipe, say)
    say(f"recipe: {recipe.budget_s / 60:.1f} min budget: " + ", ".join(
        f"{stage} {share * recipe.budget_s / 60:.1f} min" for stage, share in STAGE_SHARES.items()))
    stages = {}
    stages.update(_side_by_side(recipe, "autoencoder", data, lambda m: [], say))
    stages.update(_side_by_side(recipe, "diffusion", data,
                                lambda m: ["--init", str(out / f"ae_{m}" / MODEL_FILE)], say))
    joint_init = ["--init", *(str(out / f"diffusion_{m}" / MODEL_FILE) for m in MODALITIES)]
    stages["joint"] = _wait(recipe, [_start(recipe, "joint", None, data, joint_init, recipe.threads, say)], say)[0]
    final = out / MODEL_FILE
    _call(recipe, "export", [sys.executable, "-m", "syncvp_core.cli.train", "export",
                             str(out / "joint" / MODEL_FILE), str(final)], say)
    _call(recipe, "evaluation", [sys.executable, "-m", "syncvp_core.cli.evaluate", "--checkpoint", str(final),
                                 "--data", test_data, "--split", "test", "--train-data", data,
                                 "--horizon", "8", "--samples",
                                 str(recipe.eval_samples), "--skip", "fvd", "--out", str(out / "eval")], say)
    summary = {"recipe": {**asdict(recipe), "out": str(out)}, "stages": stages, "model": str(final),
               "evaluation": str(out / "eval" / "metrics.json"),
               "wall_s_this_invocation": round(time.monotonic() - started, 1)}
    (out / "recipe.json").write_text(json.dumps(summary, indent=1))
    return summary


def prepare_data(recipe: Recipe, say) -> tuple[str, str]:
    """(training spec, held-out spec); generates the synthetic sets that were not given (idempotent)."""
    sets = []
    for spec, name, seed, count, kind in ((recipe.data, "data", 0, recipe.sequences, "val"),
                                          (recipe.test_data, "data_test", 1, recipe.test_sequences, "test")):
        if spec is None:
            folder = recipe.out / name
            if not (folder / "meta.json").is_file():
                say(f"recipe: generating {count} synthetic sequences into {folder} (seed {seed})")
                held_out = {"val": max(1, count // 16)} if kind == "val" else {"test": count}
                write_dataset(folder, count, frames=recipe.frames, seed=seed, workers=recipe.threads, **held_out)
            spec = f"synthetic:{folder}"
        sets.append(spec)
    return sets[0], sets[1]


def _side_by_side(recipe: Recipe, stage: str, data: str, init, say) -> dict:
    """Both modalities of a stage as two one-thread processes at once."""
    threads = max(1, recipe.threads // 2)
    jobs = [_start(recipe, stage, m, data, init(m), threads, say) for m in MODALITIES]
    return {f"{stage}_{m}": result for m, result in zip(MODALITIES, _wait(recipe, jobs, say))}


def _start(recipe: Recipe, stage: str, modality: str | None, data: str, init: list, threads: int, say):
    """(name, process or None if the stage is done, log path)."""
    name = stage if modality is None else f"{stage}_{modality}"
    run_dir = recipe.out / ("ae_" + modality if stage == "autoencoder" else name)
    log = recipe.out / "logs" / f"{name}.log"
    if (run_dir / "summary.json").is_file():
        say(f"recipe: {name} finished earlier ({run_dir / 'summary.json'}), skipped")
        return name, None, log, run_dir
    budget = f"{STAGE_SHARES[stage] * recipe.budget_s:.0f}s"
    args = [sys.executable, "-m", "syncvp_core.cli.train", stage, "--out", str(run_dir)]
    if (run_dir / "train_state.safetensors").is_file():
        say(f"recipe: {name} resumes from its last checkpoint")
        args += ["--resume"]
    else:
        args += ["--model", recipe.model, "--data", data, "--time-budget", budget, *COMMON, *STAGE_ARGS[stage],
                 *init, *recipe.extra.get(stage, [])]
        if modality is not None:
            args += ["--modality", modality]
    say(f"recipe: {name} started ({budget}, {threads} thread(s)); log {log}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "a") as handle:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=handle, env=env, text=True)
    return name, process, log, run_dir


def _wait(recipe: Recipe, jobs, say) -> list[dict]:
    for _, process, _, _ in jobs:  # every process ends before any failure is reported
        if process is not None:
            process.wait()
    results = []
    for name, process, log, run_dir in jobs:
        if process is not None and process.returncode:
            raise RecipeError(f"stage {name} failed (exit {process.returncode}); see {log}")
        summary = json.loads((run_dir / "summary.json").read_text())
        say(f"recipe: {name}: step {summary['step']}, {summary['it_per_s']} it/s, validation loss "
            f"{summary['val'].get('loss', float('nan')):.4f}")
        results.append(summary)
    return results


def _call(recipe: Recipe, name: str, args: list, say) -> None:
    log = recipe.out / "logs" / f"{name}.log"
    say(f"recipe: {name}; log {log}")
    env = {**os.environ, "OMP_NUM_THREADS": str(recipe.threads)}
    with open(log, "a") as handle:
        if subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode:
            raise RecipeError(f"{name} failed; see {log}")
