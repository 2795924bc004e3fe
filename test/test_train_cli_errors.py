"""syncvp-train's bad input that used to end in a traceback: an unknown --model and an unwritable export target
are one line on stderr and exit status 2 (no training data or run needed)."""
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
