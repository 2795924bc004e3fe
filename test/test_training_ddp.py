"""syncvp-train under torchrun: two CPU processes (gloo) train the diffusion stage with DistributedDataParallel."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from syncvp_core.checkpoint import load_checkpoint
from syncvp_core.train.loop import train
from syncvp_core.train.run_files import MODEL_FILE
from syncvp_core.train.settings import TrainConfig
from test_training import micro_setup

TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_torchrun_two_processes_end_with_identical_weights(tmp_path, one_torch_thread):
    data, micro = micro_setup(tmp_path)
    train(TrainConfig(stage="autoencoder", data=data, init=[micro], out=str(tmp_path / "ae"), max_steps=1,
                      batch_size=2, val_batches=1, lpips_weight=0), say=lambda _: None)
    out = tmp_path / "ddp"
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "syncvp_core.cli.train", "diffusion",
               "--data", data, "--init", str(tmp_path / "ae" / MODEL_FILE), "--out", str(out), "--max-steps", "3",
               "--batch-size", "1", "--val-batches", "1", "--sample-steps", "2", "--warmup-steps", "1", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    summary = json.loads(result.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert summary["processes"] == 2 and summary["step"] == 3
    first, second = summary["replica_fingerprints"]
    assert first == second  # both ranks hold the same trained weights after 3 all-reduced steps
    # rank 0 alone logs: one train line (the last step) and one validation line
    kinds = [json.loads(line)["kind"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert kinds == ["train", "val"]
    ckpt = load_checkpoint(out / MODEL_FILE)
    start = load_checkpoint(tmp_path / "ae" / MODEL_FILE).model.state_dict()
    trained = {k: v for k, v in ckpt.model.state_dict().items() if k.startswith("net.rgb_branch.")}
    assert ckpt.step == 3 and any(not torch.equal(v, start[k]) for k, v in trained.items())
