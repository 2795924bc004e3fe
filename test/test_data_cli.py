"""`syncvp-data`: synth writes the documented files; info/preview read specs; bad input exits with one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from syncvp_core.cli.data import main

EXE = Path(sys.executable).parent / "syncvp-data"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def synth_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "set"
    done = run("synth", "--out", str(out), "--sequences", "3", "--frames", "5", "--size", "16", "--seed", "4",
               "--val-sequences", "1", "--holes", "0.1", "--json")
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_synth_writes_sequences_and_meta(synth_out):
    out, report = synth_out
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "seq_00000.npz", "seq_00001.npz", "seq_00002.npz"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"] == {"train": ["seq_00000.npz", "seq_00001.npz"], "val": ["seq_00002.npz"], "test": []}
    assert (meta["frames"], meta["size"], meta["seed"], meta["sensor"]["hole_fraction"]) == (5, 16, 4, 0.1)
    record = meta["sequences"]["seq_00001.npz"]
    assert np.array(record["intrinsics"]).shape == (3, 3) and record["ego_speed"] > 0
    with np.load(out / "seq_00001.npz") as npz:
        assert npz["rgb"].shape == (5, 16, 16, 3) and npz["rgb"].dtype == np.uint8
        assert npz["depth"].shape == (5, 16, 16) and npz["depth"].dtype == np.float32
        assert 0.05 < np.isnan(npz["depth"]).mean() < 0.9  # sky and holes
    assert report["splits"] == {"train": 2, "val": 1, "test": 0} and report["frames_per_second"] > 0
    assert report["bytes"] == sum(p.stat().st_size for p in out.iterdir())


def test_bad_arguments_exit_non_zero_with_one_line(synth_out, tmp_path, capsys):
    out, _ = synth_out
    for args in [("synth", "--out", str(tmp_path / "x"), "--sequences", "0"),
                 ("synth", "--sequences", "2"),
                 ("synth", "--out", str(out), "--sequences", "2")]:  # a data set is already there
        done = run(*args)
        assert done.returncode != 0 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, args
    assert "--overwrite" in done.stderr and not (tmp_path / "x").exists()
    # the same one-line contract in-process (these import torch, slow as subprocesses)
    for args in [("info", "video:/nowhere"), ("info", f"synthetic:{out}", "--split", "test"),
                 ("preview", f"synthetic:{out}", "--out", str(tmp_path / "p.png"), "--clip", "9")]:
        assert main(list(args)) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, args


def test_help_for_every_command():
    for args in [("--help",), ("synth", "--help"), ("info", "--help"), ("preview", "--help")]:
        done = run(*args)
        assert done.returncode == 0 and "usage: syncvp-data" in done.stdout


def test_info_counts_clips_and_preview_writes_rgb_over_depth(synth_out, tmp_path, capsys):
    out, _ = synth_out
    assert main(["info", f"synthetic:{out}", "--clip-length", "3", "--split", "train", "--size", "8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["sequences"], info["frames"], info["clips"]) == (2, 10, 6)
    assert 0 < info["valid_depth_fraction"] < 1 and 0 < info["depth_m"]["min"] <= info["depth_m"]["max"]
    assert main(["info", f"synthetic:{out}", "--clip-length", "5"]) == 0
    assert "3 sequences, 15 frames, 3 clips of 5" in capsys.readouterr().out
    png = tmp_path / "sheet.png"
    assert main(["preview", f"synthetic:{out}", "--out", str(png), "--clip-length", "4", "--size", "16"]) == 0
    with Image.open(png) as sheet:
        assert sheet.size == (4 * 16, 2 * 16)


def test_corrupt_file_is_named_on_one_line(synth_out, tmp_path, capsys):
    out, _ = synth_out
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "seq_00001.npz").write_bytes(b"not a zip")
    assert main(["info", f"synthetic:{tmp_path}", "--clip-length", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seq_00001.npz" in err
    assert main(["info", f"synthetic:{tmp_path}?skip_bad=1", "--clip-length", "5", "--json"]) == 0
