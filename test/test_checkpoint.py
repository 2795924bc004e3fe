import json

import pytest
import safetensors.torch
import torch

from syncvp_core import checkpoint
from syncvp_core.checkpoint import (CheckpointError, load_checkpoint, load_model, model_id, model_id_config,
                                    read_config, save_checkpoint)
from syncvp_core.config import get_config


@pytest.fixture(scope="module")
def tiny():
    return load_model("preset:tiny")


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", tiny, step=42,
                           extra={"loss": 0.5})


def test_round_trip_keeps_every_weight_config_and_metadata(tiny, saved):
    ck = load_checkpoint(saved, expected_config=tiny.cfg)
    assert ck.step == 42 and ck.extra == {"loss": 0.5}
    assert ck.model.cfg.to_dict() == tiny.cfg.to_dict()
    original, loaded = tiny.state_dict(), ck.model.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    assert not ck.model.training
    assert read_config(saved).to_dict() == tiny.cfg.to_dict()


def test_preset_init_is_deterministic_and_leaves_the_global_rng_alone(tiny):
    state = torch.random.get_rng_state()
    again = load_model("preset:tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model_id(again) == model_id(tiny)
    assert model_id(tiny).startswith("tiny-") and len(model_id(tiny)) == len("tiny-") + 12


def test_model_id_follows_the_weights(tiny):
    changed = load_model("preset:tiny")
    with torch.no_grad():
        next(changed.net.parameters()).view(-1)[0] += 1e-3
    assert model_id(changed) != model_id(tiny)


def test_model_id_config_reads_the_config_name_back(tiny):
    assert model_id_config(model_id(tiny)) == "tiny"
    assert model_id_config("paper-64-0123456789ab") == "paper-64"  # config names may hold the separator


def test_config_mismatch_names_the_fields(tiny, saved):
    other = get_config("tiny")
    channels = other.unet.model_channels
    other.unet.model_channels = 2 * channels
    other.depth_far = tiny.cfg.depth_far + 10
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(saved, expected_config=other)
    message = str(e.value)
    assert "\n" not in message and str(saved) in message
    assert f"unet.model_channels: {channels} vs {2 * channels}" in message
    assert f"depth_far: {tiny.cfg.depth_far!r} vs {tiny.cfg.depth_far + 10!r}" in message
    assert "resolution" not in message


def test_missing_and_bundled_files(tmp_path, monkeypatch, tiny, saved):
    with pytest.raises(CheckpointError, match="nowhere.safetensors"):
        load_model(str(tmp_path / "nowhere.safetensors"))
    with pytest.raises(CheckpointError, match="unknown preset"):
        load_model("preset:huge")
    missing = tmp_path / "weights" / "tiny.safetensors"
    monkeypatch.setattr(checkpoint, "BUNDLED_PATH", missing)
    with pytest.raises(CheckpointError, match=str(missing)):
        load_model("bundled")
    monkeypatch.setattr(checkpoint, "BUNDLED_PATH", saved)
    assert model_id(load_model("bundled")) == model_id(tiny)


def test_corrupt_foreign_and_mismatched_files(tmp_path, saved):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_model(str(garbage))
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a SyncVP checkpoint"):
        load_model(str(foreign))
    # tensors that do not fit the stored config (e.g. a file edited by hand)
    metadata = {"format": "syncvp", "format_version": "1", "config": json.dumps(get_config("tiny").to_dict())}
    wrong = tmp_path / "wrong.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(wrong), metadata=metadata)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(wrong)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(saved.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_model(str(truncated))


@pytest.mark.parametrize("edit", [lambda c: c.update(unet=None), lambda c: c.update(diffusion=[1, 2])])
def test_malformed_config_section_is_a_checkpoint_error(tmp_path, edit):
    config = get_config("tiny").to_dict()
    edit(config)
    metadata = {"format": "syncvp", "format_version": "1", "config": json.dumps(config)}
    bad = tmp_path / "bad.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="invalid config"):
        read_config(bad)
