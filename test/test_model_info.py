import json
import subprocess
import sys
from pathlib import Path

import pytest

from syncvp_core.checkpoint import load_model, save_checkpoint
from syncvp_core.cli.model_info import main, model_info
from syncvp_core.config import get_config

CLI = Path(sys.executable).parent / "syncvp-model-info"
PARAM_KEYS = {"autoencoder_rgb", "autoencoder_depth", "unet_rgb", "unet_depth", "stca", "total"}


def test_tiny_json_via_console_script():
    out = subprocess.run([str(CLI), "tiny", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert PARAM_KEYS <= info["params"].keys()
    assert info["params"]["total"] == sum(v for k, v in info["params"].items() if k != "total")
    assert info["gflop_per_ddim_step"] > 0
    parts = info["gflop_per_ddim_step_parts"]
    assert info["gflop_per_ddim_step"] == pytest.approx(parts["unet_rgb"] + parts["unet_depth"] + parts["stca"],
                                                        rel=1e-6)
    levels = info["stca_attention_flop_ratio"]
    assert levels and all(0 < level["ratio"] < 1 for level in levels)


def test_paper_128_matches_the_reference():
    info = model_info(get_config("paper-128"))
    params = info["params"]
    assert params["unet_rgb"] == pytest.approx(58_561_284, rel=0.01)
    assert params["unet_depth"] == pytest.approx(58_561_284, rel=0.01)
    assert params["stca"] == pytest.approx(4 * 1_577_984, rel=0.01)
    assert params["autoencoder_rgb"] == pytest.approx(23.0e6, rel=0.01)
    assert params["autoencoder_depth"] == pytest.approx(23.0e6, rel=0.01)
    # method reference §9: 182.5 GFLOP per joint step, 84.9 per UNet, ≈12.8 in STCA
    assert info["gflop_per_ddim_step"] == pytest.approx(182.5, rel=0.01)
    assert info["gflop_per_ddim_step_parts"]["unet_rgb"] == pytest.approx(84.9, rel=0.01)
    assert info["gflop_per_ddim_step_parts"]["stca"] == pytest.approx(12.8, rel=0.02)
    levels = info["stca_attention_flop_ratio"]
    assert [level["tokens"] for level in levels] == [384, 384, 384, 1536]
    assert all(level["ratio"] == pytest.approx(0.5) for level in levels)


def test_paper_64_ratio_is_the_papers_37_percent():
    levels = model_info(get_config("paper-64"))["stca_attention_flop_ratio"]
    assert levels and all(level["ratio"] == pytest.approx(0.375) for level in levels)


def test_table_output(capsys):
    assert main(["tiny"]) == 0
    out = capsys.readouterr().out
    assert "unet_rgb" in out and "GFLOP per joint DDIM step" in out


def test_unknown_config_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["huge"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown config 'huge'" in err and "tiny" in err


def test_config_read_from_a_checkpoint(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "m.safetensors", load_model("preset:tiny"))
    assert main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == model_info(get_config("tiny"))["params"]
