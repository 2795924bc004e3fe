"""syncvp-train's bad input that used to end in a traceback: an unknown --model and an unwritable export target
are one line on stderr and exit status 2 (no training data or run needed); export sets the sampling defaults."""
import pathlib

import pytest

from syncvp_core.cli.train import main

BUNDLED = pathlib.Path(__file__).resolve().parents[1] / "syncvp_core" / "weights" / "tiny.safetensors"


def one_line_exit(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("stage", ["autoencoder", "recipe"])
def test_an_unknown_model_preset_is_one_line(stage, tmp_path, capsys):
    extra = ["--budget", "1m"] if stage == "recipe" else ["--data", "synthetic:/no/such/dir"]
    err = one_line_exit([stage, "--model", "nope", "--out", str(tmp_path / "run"), *extra], capsys)
    assert "unknown config 'nope'" in err and "tiny" in err


def test_an_unwritable_export_target_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    err = one_line_exit(["export", str(BUNDLED), str(blocker / "dir" / "model.safetensors")], capsys)
    assert "cannot write" in err and str(blocker) in err


def test_export_stores_the_sampling_defaults_it_is_given_and_refuses_a_bad_eta(tmp_path, capsys):
    from syncvp_core.checkpoint import load_checkpoint

    target = tmp_path / "shipped.safetensors"
    assert main(["export", str(BUNDLED), str(target), "--sampler", "dpmsolver", "--steps", "7", "--eta", "0.5"]) == 0
    exported, source = load_checkpoint(target).model.cfg.diffusion, load_checkpoint(BUNDLED).model.cfg.diffusion
    assert (exported.sampler, exported.sampling_steps, exported.eta) == ("dpmsolver", 7, 0.5)
    assert exported.prediction == source.prediction and exported.timesteps == source.timesteps
    capsys.readouterr()
    err = one_line_exit(["export", str(BUNDLED), str(tmp_path / "x.safetensors"), "--eta", "1.5"], capsys)
    assert "--eta" in err and "<= 1.0" in err
