"""syncvp-train: train SyncVP in the paper's three stages (one subcommand each; docs/training.md).

  syncvp-train autoencoder --modality rgb   --data synthetic:DIR --out build/train/ae_rgb
  syncvp-train diffusion   --modality rgb   --data synthetic:DIR --init build/train/ae_rgb/model.safetensors ...
  syncvp-train joint --data synthetic:DIR --init build/train/diff_rgb/model.safetensors \\
                                                 build/train/diff_depth/model.safetensors
  syncvp-train recipe --out build/bundled --budget 100m      (all of it: data, stages, export, evaluation)
Settings come from the TrainConfig defaults, then --config YAML, then flags. Multi-GPU or multi-node:
  torchrun --nproc_per_node N $(which syncvp-train) joint ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml

from syncvp_core.checkpoint import CheckpointError
from syncvp_core.config import SAMPLERS, get_config
from syncvp_core.data.errors import DataError
from syncvp_core.arguments import POSITIVE_INT, OneLineParser, number
from syncvp_core.train import recipe as recipe_module
from syncvp_core.train.loop import train
from syncvp_core.train.run_files import export_model, saved_config
from syncvp_core.train.settings import STAGES, TrainConfig, TrainingError, parse_duration

STAGE_HELP = {
    "autoencoder": "stage 1: the triplane autoencoder of one modality (L1 + LPIPS)",
    "diffusion": "stage 2: the single-modality latent diffusion branch of one modality",
    "joint": "stage 3: both branches + STCA from the stage-2 files (shared noise, modality dropout)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="syncvp-train", description=__doc__.splitlines()[0],
                           epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage in STAGES:
        sub = stages.add_parser(stage, help=STAGE_HELP[stage], description=STAGE_HELP[stage],
                                argument_default=argparse.SUPPRESS)  # only given flags override the YAML
        sub.add_argument("--config", metavar="YAML", help="settings file (see config/train/); flags override it")
        sub.add_argument("--resume", action="store_true",
                         help="continue the run in --out from its last checkpoint (its saved settings, "
                              "overridden by the flags given, e.g. a longer --max-steps)")
        sub.add_argument("--json", action="store_true", help="print the run summary as JSON")
        for f in dataclasses.fields(TrainConfig):
            if stage in f.metadata["stages"]:
                _add_option(sub, f)
    recipe = stages.add_parser("recipe", help="the bundled model end to end: data, three stages in one time "
                               "budget, export, held-out evaluation (resumable)",
                               description=recipe_module.__doc__.split("\n\n")[0])
    recipe.add_argument("--out", type=Path, required=True, help="folder of the stages' runs, logs and the model")
    recipe.add_argument("--budget", required=True, help="wall time of the three stages, e.g. 100m or 2.5h")
    recipe.add_argument("--model", default="tiny", help="model preset (default: tiny)")
    recipe.add_argument("--data", help="training data spec (default: generate synthetic data into OUT/data)")
    recipe.add_argument("--test-data", help="held-out data spec with a 'test' split (default: generate, seed 1)")
    recipe.add_argument("--sequences", type=POSITIVE_INT, default=320, help="generated training sequences (320)")
    recipe.add_argument("--test-sequences", type=POSITIVE_INT, default=60, help="generated held-out sequences (60)")
    recipe.add_argument("--frames", type=POSITIVE_INT, default=30, help="frames per generated sequence (30)")
    recipe.add_argument("--eval-samples", type=POSITIVE_INT, default=60, help="held-out clips evaluated (60)")
    recipe.add_argument("--threads", type=POSITIVE_INT, default=2, help="CPU threads in all (2: two 1-thread "
                        "stages side by side)")
    recipe.add_argument("--json", action="store_true", help="print the recipe summary as JSON")
    export = stages.add_parser("export", help="copy a checkpoint with its weights in float16 (to ship it)",
                               description="copy a checkpoint with its weights stored in a smaller float type")
    export.add_argument("checkpoint", help="model.safetensors of a run")
    export.add_argument("target", help="file to write, e.g. syncvp_core/weights/tiny.safetensors")
    export.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                        help="stored weight type (default: float16)")
    export.add_argument("--sampler", choices=SAMPLERS, help="inference sampler stored as the file's default "
                        "(default: keep the source's)")
    export.add_argument("--steps", type=POSITIVE_INT, help="network evaluations per chunk stored as the default "
                        "(default: keep)")
    export.add_argument("--eta", type=number(float, at_least=0.0, at_most=1.0),
                        help="DDIM eta stored as the default (default: keep)")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _add_option(parser: argparse.ArgumentParser, f: dataclasses.Field) -> None:
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    kwargs = dict(f.metadata["argparse"])
    if isinstance(default, bool):
        kwargs["action"] = argparse.BooleanOptionalAction
    elif "type" not in kwargs and "nargs" not in kwargs:
        kwargs["type"] = type(default)
    parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name,
                        help=f"{f.metadata['help']} (default: {_shown(default)})", **kwargs)


def _shown(default) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default)) or "none"
    return "none" if default is None else str(default)


def read_yaml(path: str, stage: str) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise TrainingError(f"cannot read --config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise TrainingError(f"--config {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(values, dict):
        raise TrainingError(f"--config {path} must be a mapping of settings")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    if values.setdefault("stage", stage) != stage:
        raise TrainingError(f"--config {path} is for stage {values['stage']!r}, not {stage!r}")
    return values


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, bool]:
    """(TrainConfig, resume) from the subcommand's arguments."""
    given = {k: v for k, v in vars(args).items() if k not in ("config", "resume", "json")}
    values = {**(read_yaml(args.config, args.stage) if "config" in args else {}), **given}
    resume = getattr(args, "resume", False)
    if resume:
        out = values.get("out", TrainConfig.__dataclass_fields__["out"].default)
        saved = dataclasses.asdict(saved_config(out))
        if saved["stage"] != args.stage:
            raise TrainingError(f"{out} holds a {saved['stage']} run, not {args.stage}")
        values = {**saved, **values}
    cfg = TrainConfig.from_dict(values)
    check_model(cfg.model)
    return cfg, resume


def check_model(name: str) -> None:
    """An unknown --model is a one-line error before anything starts, not a traceback from inside the run."""
    try:
        get_config(name)
    except ValueError as e:
        raise TrainingError(str(e)) from None


def print_summary(s: dict) -> None:
    what = s["stage"] if s["modality"] is None else f"{s['stage']} {s['modality']}"
    print(f"{what}: step {s['step']} ({s['steps_this_run']} this run) in {s['seconds']:.1f} s, "
          f"{s['it_per_s']:.2f} it/s on {s['processes']} process(es), stopped by {s['stopped_by']}")
    val = "  ".join(f"{k} {v:.4f}" for k, v in s["val"].items() if isinstance(v, float))
    if s["train"]:
        print(f"  last train loss {s['train']['loss']:.4f}; validation (EMA): {val}")
    print(f"  checkpoint {s['checkpoint']}")
    print(f"  samples    {s['val']['samples']}")


def export(args: argparse.Namespace) -> int:
    sampling = {field: value for field, value in (("sampler", args.sampler), ("sampling_steps", args.steps),
                                                  ("eta", args.eta)) if value is not None}
    path = export_model(args.checkpoint, args.target, getattr(torch, args.dtype), sampling)
    result = {"path": str(path), "bytes": path.stat().st_size, "dtype": args.dtype}
    print(json.dumps(result) if args.json else f"wrote {path} ({result['bytes'] / 2**20:.1f} MiB, {args.dtype})")
    return 0


def recipe(args: argparse.Namespace) -> int:
    check_model(args.model)
    summary = recipe_module.run(recipe_module.Recipe(
        out=args.out, budget_s=parse_duration(args.budget), model=args.model, data=args.data,
        test_data=args.test_data, sequences=args.sequences, test_sequences=args.test_sequences, frames=args.frames,
        eval_samples=args.eval_samples, threads=args.threads), say=lambda line: print(line, file=sys.stderr))
    print(json.dumps(summary) if args.json else f"model {summary['model']}; evaluation {summary['evaluation']}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.stage == "export":
            return export(args)
        if args.stage == "recipe":
            return recipe(args)
        cfg, resume = resolve_config(args)
        summary = train(cfg, resume)
    except (TrainingError, CheckpointError, DataError, recipe_module.RecipeError) as e:  # DataError: a clip file broken mid-run
        parser.exit(2, f"syncvp-train {args.stage}: {e}\n")
    if summary:  # rank 0
        if getattr(args, "json", False):
            print(json.dumps(summary))
        else:
            print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
