"""The reference family against the compat fixture made by the authors' code (../shared/compat, FORMAT.md):
every fixture array reproduced from the .pth files, the paper-128 key layout, the converter and its errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from syncvp_core.checkpoint import CheckpointError, load_model
from syncvp_core.diffusion import NoiseSchedule
from syncvp_core.reference import PAPER_128, DepthCodec, build, load_directory
from syncvp_core.reference.load import AE_MEMBERS, infer_config, release_files
from syncvp_core.sampler import DDIMSampler, guided_eps

COMPAT = Path(__file__).resolve().parents[2] / "shared" / "compat"
RELEASE = COMPAT / "checkpoints"
CLI = os.path.join(os.path.dirname(sys.executable), "syncvp-import-reference")
pytestmark = [pytest.mark.skipif(not RELEASE.is_dir(), reason=f"compat fixture not found at {COMPAT}"),
              pytest.mark.usefixtures("one_torch_thread")]


def arrays(name):
    with np.load(COMPAT / f"{name}.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.fixture(scope="module")
def model():
    # the raw 8-bit codec: the fixture's depth clips are the authors' 8-bit values, not metres
    return load_directory(RELEASE, depth_codec=DepthCodec("raw_u8"))


def max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("modality", ["rgb", "depth"])
def test_autoencoders_reproduce_latents_and_decodes(model, modality):
    ae = arrays("ae")
    clip = ae[f"clip_{modality}_u8"]  # B×T×3×H×W uint8
    x_cond = clip[:, :2].float().div(127.5).sub(1).transpose(1, 2)
    assert max_err(x_cond, ae[f"x_cond_{modality}"]) == 0
    with torch.no_grad():
        if modality == "rgb":  # through the public path: [0, 1] frames
            z_cond, z_tgt = model.encode_rgb(clip[:, :2] / 255.0), model.encode_rgb(clip[:, 2:] / 255.0)
        else:  # grey 8-bit values through the raw codec, replicated to 3 channels inside
            z_cond, z_tgt = model.encode_depth(clip[:, :2, 0].float()), model.encode_depth(clip[:, 2:, 0].float())
        assert max_err(z_cond, ae[f"z_cond_{modality}"]) < 1e-4
        assert max_err(z_tgt, ae[f"z_tgt_{modality}"]) < 1e-4
        for z, frames, name in ((ae[f"z_cond_{modality}"], 2, f"dec_cond_{modality}"),
                                (ae[f"z_tgt_{modality}"], 8, f"dec_tgt_{modality}"),
                                (ae["z_given_8f"], 8, f"dec_given_{modality}_8f")):
            decoded = model.autoencoder_for(modality, frames).decode(z, frames)  # B×3×T×H×W
            assert max_err(decoded[0].transpose(0, 1), ae[name]) < 1e-4, name


@pytest.mark.parametrize("slot", [2, 3, 4, 5])
def test_each_stca_block_reproduces_its_outputs(model, slot):
    s = arrays("stca")
    tokens = s[f"stca{slot}_in_rgb"].shape[-1]
    shape = model.cfg.target_shape() if tokens == 512 else model.cfg.target_shape().downsampled(2)
    with torch.no_grad():
        out_rgb, out_depth = model.net.diffusion_model.cross_attns[str(slot)](
            s[f"stca{slot}_in_rgb"], s[f"stca{slot}_in_depth"], shape)
    assert max_err(out_rgb, s[f"stca{slot}_out_rgb"]) < 1e-4
    assert max_err(out_depth, s[f"stca{slot}_out_depth"]) < 1e-4


def joint_cases():
    u, ae = arrays("unet"), arrays("ae")
    zero = torch.zeros_like(ae["z_cond_depth"])
    x, t = (u["unet_x_rgb"], u["unet_x_depth"]), u["unet_t"]
    return {"both": (*x, t, ae["z_cond_rgb"], ae["z_cond_depth"], u["eps_rgb"], u["eps_depth"]),
            "no depth": (*x, t, ae["z_cond_rgb"], zero, u["eps_rgb_nodepth"], u["eps_depth_nodepth"]),
            "batch 2, RGB dropped": (u["b2_x_rgb"], u["b2_x_depth"], u["b2_t"], u["b2_cond_rgb"],
                                     u["b2_cond_depth"], u["b2_eps_rgb"], u["b2_eps_depth"])}


@pytest.mark.parametrize("case", ["both", "no depth", "batch 2, RGB dropped"])
def test_joint_eps_matches_in_the_three_cases(model, case):
    x_rgb, x_depth, t, cond_rgb, cond_depth, eps_rgb, eps_depth = joint_cases()[case]
    with torch.no_grad():
        out_rgb, out_depth = model.net(x_rgb, x_depth, t, cond_rgb, cond_depth)
    assert max_err(out_rgb, eps_rgb) < 1e-4 * eps_rgb.abs().max().item()
    assert max_err(out_depth, eps_depth) < 1e-4 * eps_depth.abs().max().item()


def test_guidance_drops_a_modality_as_the_reference_zero_padding(model):
    """Our sampler's zeroed conditioning latent is the reference's dropped condition (unet.npz `b2`, sample 1)."""
    x_rgb, x_depth, t, cond_rgb, cond_depth, eps_rgb, eps_depth = joint_cases()["batch 2, RGB dropped"]
    assert not cond_rgb[1].any()
    with torch.no_grad():
        out_rgb, _ = guided_eps(model.net, x_rgb[1:], x_depth[1:], t[1:], torch.zeros_like(cond_rgb[1:]),
                                cond_depth[1:])
    assert max_err(out_rgb, eps_rgb[1:]) < 1e-4 * eps_rgb.abs().max().item()


def test_ten_step_ddim_sample_and_frames_match(model):
    d, ae = arrays("ddim"), arrays("ae")
    schedule = NoiseSchedule.from_config(model.cfg.diffusion)
    assert max_err(schedule.alphas_cumprod, d["alphas_cumprod"].double()) < 1e-6
    sampler = DDIMSampler(schedule, steps=10, eta=0.0, prediction=model.cfg.diffusion.prediction)
    assert sampler.timesteps + [-1] == d["ddim_timesteps"].tolist()
    x_rgb, x_depth = d["ddim_xT"].clone(), d["ddim_xT"].clone()  # one x_T for both modalities
    with torch.no_grad():
        for t in sampler.timesteps:
            eps_rgb, eps_depth = guided_eps(model.net, x_rgb, x_depth, torch.tensor([t]), ae["z_cond_rgb"],
                                            ae["z_cond_depth"])
            x_rgb, _ = sampler.step(eps_rgb, t, x_rgb)
            x_depth, _ = sampler.step(eps_depth, t, x_depth)
        assert max_err(x_rgb, d["ddim_z_rgb"]) < 1e-4 and max_err(x_depth, d["ddim_z_depth"]) < 1e-4
        rgb = model.decode_rgb(x_rgb, 8)  # 1×8×3×H×W in [0, 1]
        depth = model.autoencoder_for("depth", 8).decode(x_depth, 8).clamp(-1, 1)[0].transpose(0, 1)
        depth_u8 = model.decode_depth(x_depth, 8)  # raw codec: continuous 8-bit grey (channel mean)
    assert max_err(rgb[0] * 2 - 1, d["ddim_frames_rgb"]) < 1e-4
    assert max_err(depth, d["ddim_frames_depth"]) < 1e-4
    rgb_u8 = (model.quantise_rgb(rgb) * 255).round().permute(0, 1, 3, 4, 2)  # truncated, as the reference
    assert max_err(rgb_u8, d["ddim_frames_rgb_u8"]) <= 1
    reference_grey = d["ddim_frames_depth_u8"].float().mean(-1)
    assert max_err(model.cfg.depth_codec.to_u8(depth_u8), reference_grey) <= 1


def read_keys(name):
    rows = (line.split("\t") for line in (COMPAT / "keys" / f"{name}.txt").read_text().splitlines())
    return {key: tuple(int(n) for n in shape.strip("(),").split(",") if n) for key, shape, _ in rows}


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_paper_128_family_has_exactly_the_released_keys_and_shapes():
    paper = build(PAPER_128, device="meta")
    assert shapes(paper.net) == read_keys("paper128_syncvp_cityscapes")
    for frames in (8, 2):
        for modality in ("rgb", "depth"):
            assert shapes(paper.autoencoder_for(modality, frames)) == read_keys(f"paper128_ae_{frames}f_cityscapes")
    # and the architecture inference reads PAPER_128 back off those shapes
    states = {m: paper.autoencoder_for(m.split("_")[1], int(m.split("_")[2][0])).state_dict() for m in AE_MEMBERS}
    states["syncvp"] = paper.net.state_dict()
    cfg = infer_config(states, dict.fromkeys(states, Path("paper")), "cityscapes")
    assert cfg.to_dict() == {**PAPER_128.to_dict(), "name": "reference-cityscapes"}


def import_reference(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_converter_round_trip_gives_the_same_eps_and_latents(tmp_path, model):
    out = tmp_path / "reference.safetensors"
    done = import_reference(RELEASE, "--out", out, "--dtype", "fp32", "--depth-codec", "raw_u8")
    assert done.returncode == 0, done.stderr
    converted = load_model(str(out))
    assert type(converted) is type(model) and converted.cfg == model.cfg
    x_rgb, x_depth, t, cond_rgb, cond_depth, eps_rgb, eps_depth = joint_cases()["both"]
    ae = arrays("ae")
    with torch.no_grad():
        out_rgb, out_depth = converted.net(x_rgb, x_depth, t, cond_rgb, cond_depth)
        latent = converted.encode_rgb(ae["clip_rgb_u8"][:, :2] / 255.0)
    assert max_err(out_rgb, eps_rgb) < 1e-4 * eps_rgb.abs().max().item()
    assert max_err(out_depth, eps_depth) < 1e-4 * eps_depth.abs().max().item()
    assert max_err(latent, ae["z_cond_rgb"]) < 1e-4
    assert type(load_model(str(RELEASE))) is type(model)  # the directory directly


def release_copy(tmp_path, replace=None, drop=None):
    """A release directory of links to the fixture files, one of them replaced by `replace(path)` or dropped."""
    folder = tmp_path / "release"
    folder.mkdir()
    for member, path in release_files(RELEASE)[1].items():
        target = folder / path.name
        if member == drop:
            continue
        if member in (replace or {}):
            replace[member](target, path)
        else:
            target.symlink_to(path)
    return folder


def truncated(target, source):
    target.write_bytes(source.read_bytes()[:100_000])


def random_bytes(target, _):
    target.write_bytes(np.random.default_rng(0).bytes(50_000))


def other_model(target, _):
    torch.save(load_model("preset:tiny").net.state_dict(), target)


@pytest.mark.parametrize("case,kwargs,expected", [
    ("corrupt .pth", {"replace": {"syncvp": truncated}}, "cannot read"),
    ("random bytes", {"replace": {"ae_rgb_2f": random_bytes}}, "cannot read"),
    ("another model's state dict", {"replace": {"syncvp": other_model}}, "is not a released SyncVP joint model"),
    ("a missing member", {"drop": "ae_depth_8f"}, "is missing ae_depth_8f_fixture.pth"),
])
def test_bad_releases_give_one_line_and_exit_2(tmp_path, case, kwargs, expected):
    folder = release_copy(tmp_path, **kwargs)
    done = import_reference(folder, "--out", tmp_path / "x.safetensors")
    assert done.returncode == 2 and done.stdout == "", case
    assert len(done.stderr.splitlines()) == 1 and expected in done.stderr, done.stderr
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(CheckpointError, match=expected):
        load_model(str(folder))


def test_depth_codec_round_trip_truncates_like_8_bit_images():
    codec = DepthCodec()
    u8 = torch.arange(256, dtype=torch.float32)
    depth = codec.from_u8(u8)
    assert torch.isnan(depth[0]) and torch.equal(codec.to_u8(depth), u8)
    assert torch.equal(codec.to_u8(torch.tensor([float("nan"), -1.0, 0.0, float("inf")])), torch.zeros(4))
    assert codec.to_u8(codec.from_u8(torch.tensor([17.9]))).item() == 17  # truncation, not rounding
