"""The bundled-model recipe end to end at a tiny size: data, both autoencoders, both diffusion branches, joint,
export and held-out evaluation, then a rerun that skips every finished stage."""
import json

import pytest

from syncvp_core.checkpoint import load_checkpoint
from syncvp_core.train.recipe import Recipe, RecipeError, run

SMALL = ["--batch-size", "2", "--val-batches", "1", "--max-steps", "3"]


def tiny_recipe(out, **kw):
    return Recipe(out=out, budget_s=600, sequences=4, test_sequences=2, frames=12, eval_samples=2, threads=2,
                  extra={"autoencoder": SMALL, "diffusion": SMALL + ["--sample-steps", "2"],
                         "joint": SMALL + ["--sample-steps", "2"]}, **kw)


def test_recipe_runs_every_stage_and_resumes(tmp_path):
    lines = []
    summary = run(tiny_recipe(tmp_path / "bundled"), say=lines.append)
    out = tmp_path / "bundled"
    assert set(summary["stages"]) == {"autoencoder_rgb", "autoencoder_depth", "diffusion_rgb", "diffusion_depth",
                                      "joint"}
    assert all(s["step"] == 3 for s in summary["stages"].values())
    # the autoencoder stage measured the latent statistics and the joint model carries them
    model = load_checkpoint(out / "model.safetensors").model
    assert all(float(stats.std.min()) != 1.0 for stats in model.latent_stats.values())
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["clips"] == 2 and "copy-last" in metrics["methods"]
    assert (out / "diffusion_rgb" / "latents.safetensors").is_file()  # stage 2 trained on cached latents

    again = []
    run(tiny_recipe(out), say=again.append)
    assert sum("skipped" in line for line in again) == 5


def test_a_failing_stage_names_its_log(tmp_path):
    recipe = tiny_recipe(tmp_path / "bad")
    recipe.extra["autoencoder"] = SMALL + ["--lr", "nope"]
    with pytest.raises(RecipeError, match=r"autoencoder_rgb failed .*autoencoder_rgb\.log"):
        run(recipe, say=lambda _: None)


def test_shipped_stage_configs_are_the_recipe_settings():
    """config/train/*.yaml run one stage by hand with exactly the recipe's settings (and its 80 m budget share)."""
    import pathlib

    import yaml

    from syncvp_core.train.recipe import COMMON, STAGE_ARGS, STAGE_SHARES
    from syncvp_core.train.settings import parse_duration

    root = pathlib.Path(__file__).resolve().parents[1]
    for stage, extra in STAGE_ARGS.items():
        settings = yaml.safe_load((root / "config" / "train" / f"{stage}.yaml").read_text())
        flags = COMMON + extra
        expected = {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)}
        expected.pop("seed")
        assert {k: float(settings[k]) for k in expected} == {k: float(v) for k, v in expected.items()}, stage
        assert parse_duration(settings["time_budget"]) == pytest.approx(STAGE_SHARES[stage] * 80 * 60)
