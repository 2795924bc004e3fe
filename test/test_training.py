"""syncvp-train on a micro model (32×32, ~0.6 M parameters) and a 4-sequence synthetic set: every stage, the
stage chain, exact resume, the joint stage's step-0 identity, data sharding and the CLI's error lines."""
import dataclasses
import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from syncvp_core.checkpoint import load_checkpoint, load_model, save_checkpoint
from syncvp_core.cli.train import main, read_yaml
from syncvp_core.config import AutoencoderConfig, CouplingConfig, SyncVPConfig, UNetConfig
from syncvp_core.data.synthetic.files import write_dataset
from syncvp_core.model import SyncVP
from syncvp_core.train.initial_weights import initial_model
from syncvp_core.train.loop import train
from syncvp_core.train.optimisation import batches, learning_rate
from syncvp_core.train.run_files import MODEL_FILE, STATE_FILE
from syncvp_core.train.settings import TrainConfig, TrainingError

REPO = Path(__file__).resolve().parents[1]


def micro_config() -> SyncVPConfig:
    return SyncVPConfig(
        name="micro", resolution=32,
        autoencoder=AutoencoderConfig(width=32, patch=8, layers=1, heads=2, head_dim=16, ff_mult=2, embed_dim=4,
                                      projector_layers=1, projector_heads=2, projector_head_dim=16, projector_mlp=64),
        unet=UNetConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), heads=2,
                        norm_groups=8),
        coupling=CouplingConfig(heads=2))


def micro_setup(root: Path) -> tuple[str, str]:
    """(data spec, micro model checkpoint): 3 training + 1 validation sequence of 11 frames (2 clips each), and a
    checkpoint that provides nothing, so `--init` on it only picks the micro config."""
    write_dataset(root / "data", sequences=4, frames=11, size=32, seed=3, val=1)
    torch.manual_seed(0)
    save_checkpoint(root / "micro.safetensors", SyncVP(micro_config()), extra={"provides": []})
    return f"synthetic:{root / 'data'}", str(root / "micro.safetensors")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data, micro = micro_setup(root)
    return root, data, micro


def run(root: Path, name: str, **settings) -> dict:
    cfg = TrainConfig(out=str(root / name), max_steps=2, batch_size=2, val_batches=1, sample_steps=2,
                      warmup_steps=1, lr=1e-3, **settings)
    return train(cfg, say=lambda _: None)


@pytest.fixture(scope="module")
def chain(setup):
    """Runs of the three stages, 2 steps each: the folders by name."""
    root, data, micro = setup
    for modality in ("rgb", "depth"):
        run(root, f"ae_{modality}", stage="autoencoder", modality=modality, data=data, init=[micro])
        run(root, f"diff_{modality}", stage="diffusion", modality=modality, data=data,
            init=[str(root / f"ae_{modality}" / MODEL_FILE)])
    run(root, "joint", stage="joint", data=data,
        init=[str(root / "diff_rgb" / MODEL_FILE), str(root / "diff_depth" / MODEL_FILE)])
    return {p.name: p for p in root.iterdir() if p.is_dir() and p.name != "data"}


def weights(path: Path, prefix: str) -> dict:
    state = load_checkpoint(path).model.state_dict()
    return {k: v for k, v in state.items() if k.startswith(prefix + ".")}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_stage_writes_a_loadable_checkpoint_logs_and_samples(chain):
    stats = {m: [f"latent_stats.{m}_2f", f"latent_stats.{m}_8f"] for m in ("rgb", "depth")}
    expected = {"ae_rgb": ["autoencoders.rgb", *stats["rgb"]], "ae_depth": ["autoencoders.depth", *stats["depth"]],
                "diff_rgb": ["autoencoders.rgb", *stats["rgb"], "net.rgb_branch"],
                "diff_depth": ["autoencoders.depth", *stats["depth"], "net.depth_branch"],
                "joint": ["autoencoders.depth", "autoencoders.rgb", *stats["depth"], *stats["rgb"], "net"]}
    for name, provides in expected.items():
        folder = chain[name]
        ckpt = load_checkpoint(folder / MODEL_FILE)
        assert ckpt.step == 2 and ckpt.extra["provides"] == provides
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["step"] == 2 and all(torch.isfinite(torch.tensor(v)) for v in summary["val"].values()
                                            if isinstance(v, float))
        kinds = [json.loads(line)["kind"] for line in (folder / "log.jsonl").read_text().splitlines()]
        assert kinds == ["train", "val"]
        assert list((folder / "samples").glob("step_*.png")) and list((folder / "tb").glob("events.out.*"))


def test_stages_train_only_their_part(chain):
    # stage 2 copies its autoencoder from stage 1 and leaves the other branch at its seeded init
    assert same(weights(chain["diff_rgb"] / MODEL_FILE, "autoencoders.rgb"),
                weights(chain["ae_rgb"] / MODEL_FILE, "autoencoders.rgb"))
    cfg = load_checkpoint(chain["diff_rgb"] / MODEL_FILE).model.cfg
    torch.manual_seed(0)  # the runs' seed
    fresh = SyncVP(cfg).state_dict()
    untouched = {k: v for k, v in fresh.items() if k.startswith("net.depth_branch.")}
    trained = {k: v for k, v in fresh.items() if k.startswith("net.rgb_branch.")}
    assert same(weights(chain["diff_rgb"] / MODEL_FILE, "net.depth_branch"), untouched)
    assert not same(weights(chain["diff_rgb"] / MODEL_FILE, "net.rgb_branch"), trained)
    # the joint stage trains the zero-initialised STCA output projections
    couplings = weights(chain["joint"] / MODEL_FILE, "net.couplings")
    assert couplings and any(v.abs().sum() > 0 for k, v in couplings.items() if ".out_" in k)


def test_joint_step_zero_reproduces_the_single_modality_models(chain, setup):
    _, data, _ = setup
    rgb_file, depth_file = chain["diff_rgb"] / MODEL_FILE, chain["diff_depth"] / MODEL_FILE
    joint, _ = initial_model(TrainConfig(stage="joint", data=data, init=[str(rgb_file), str(depth_file)]),
                             say=lambda _: None)
    rgb_model, depth_model = load_checkpoint(rgb_file).model, load_checkpoint(depth_file).model
    cfg = joint.cfg
    c = cfg.autoencoder.embed_dim
    gen = torch.Generator().manual_seed(5)
    x_rgb, x_depth = (torch.randn(3, c, cfg.target_shape().tokens, generator=gen) for _ in range(2))
    cond_rgb, cond_depth = (torch.randn(3, c, cfg.cond_shape().tokens, generator=gen) for _ in range(2))
    t = torch.tensor([0, 500, 999])
    with torch.no_grad():
        eps_rgb, eps_depth = joint.eval().net(x_rgb, x_depth, t, cond_rgb, cond_depth)
        alone_rgb = rgb_model.net.rgb_branch(x_rgb, t, cond_rgb)
        alone_depth = depth_model.net.depth_branch(x_depth, t, cond_depth)
    assert alone_rgb.abs().mean() > 1e-3 and alone_depth.abs().mean() > 1e-3  # trained heads are not zero
    torch.testing.assert_close(eps_rgb, alone_rgb, rtol=0, atol=1e-6)
    torch.testing.assert_close(eps_depth, alone_depth, rtol=0, atol=1e-6)


def test_joint_switches_reach_the_model_config(chain, setup):
    _, data, _ = setup
    init = [str(chain["diff_rgb"] / MODEL_FILE), str(chain["diff_depth"] / MODEL_FILE)]
    ablation, _ = initial_model(TrainConfig(stage="joint", data=data, init=init, shared_noise=False,
                                            shared_timestep=False, modality_dropout=False), say=lambda _: None)
    off = ablation.cfg.diffusion
    assert not off.shared_noise and not off.shared_timestep and off.dropout_probs == (1.0, 0.0, 0.0)
    on = load_checkpoint(chain["joint"] / MODEL_FILE).model.cfg.diffusion  # the defaults
    assert on.shared_noise and on.shared_timestep and on.dropout_probs == (0.5, 0.25, 0.25)


def test_a_joint_switch_given_on_resume_is_refused_or_kept_never_ignored(chain, setup, capsys):
    """The switches live in the model config; a resume continues that model, so a different switch is refused."""
    run_dir = chain["joint"]
    with pytest.raises(SystemExit) as refused:
        main(["joint", "--out", str(run_dir), "--resume", "--no-shared-noise"])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shared_noise = True (asked False)" in err and "cannot change" in err
    # the same value as the model's is no change: the run continues
    assert main(["joint", "--out", str(run_dir), "--resume", "--shared-noise", "--max-steps", "3"]) == 0
    assert load_checkpoint(run_dir / MODEL_FILE).step == 3


def test_a_decoder_only_run_keeps_the_encoder_and_so_the_latents(chain, setup, capsys):
    root, data, _ = setup
    init = chain["ae_depth"] / MODEL_FILE
    run(root, "decoder_only", stage="autoencoder", modality="depth", data=data, init=[str(init)], decoder_only=True)
    before, after = weights(init, "autoencoders.depth"), weights(root / "decoder_only" / MODEL_FILE,
                                                                 "autoencoders.depth")
    decoding = ("autoencoders.depth.from_latent.", "autoencoders.depth.decoder.", "autoencoders.depth.to_pixels.")
    encoder = [k for k in before if not k.startswith(decoding)]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(decoding))
    # the hole-fill switch sets the model config, and is refused on a model whose decoder takes no context
    capsys.readouterr()  # the run's progress bars
    with pytest.raises(SystemExit) as refused:
        main(["autoencoder", "--modality", "depth", "--data", data, "--init", str(init), "--out",
              str(root / "refused"), "--decoder-only", "--context-hole-fill", "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and len(err.splitlines()) == 1 and "context_hole_fill needs decoder_context" in err


def test_validation_samples_take_the_sampler_asked_for(chain, setup):
    root, data, _ = setup
    summary = run(root, "dpm_preview", stage="diffusion", modality="rgb", data=data,
                  init=[str(chain["ae_rgb"] / MODEL_FILE)], sample_sampler="dpmsolver")
    assert summary["step"] == 2 and list((root / "dpm_preview" / "samples").glob("step_*.png"))
    with pytest.raises(TrainingError, match="sample_sampler must be one of ddim, dpmsolver"):
        TrainConfig(stage="joint", data=data, sample_sampler="euler")


def test_a_few_step_joint_fine_tune_trains_at_its_timesteps_only(chain, setup):
    root, data, _ = setup
    init = [str(chain["joint"] / MODEL_FILE)]
    summary = run(root, "two_step", stage="joint", data=data, init=init, train_timesteps=[999, 499])
    assert summary["step"] == 2
    with pytest.raises(TrainingError, match="train_timesteps must lie in 0"):
        run(root, "refused", stage="joint", data=data, init=init, train_timesteps=[1000])


def test_resume_continues_exactly(setup, chain):
    root, data, _ = setup
    # warm-up covers all 4 steps, so stopping at 2 and extending to 4 keeps the same learning rates
    common = dict(stage="diffusion", modality="depth", data=data, init=[str(chain["ae_depth"] / MODEL_FILE)],
                  batch_size=2, val_batches=1, sample_steps=2, warmup_steps=10, ckpt_every=100)
    say = lambda _: None  # noqa: E731
    train(TrainConfig(out=str(root / "straight"), max_steps=4, **common), say=say)
    train(TrainConfig(out=str(root / "resumed"), max_steps=2, **common), say=say)
    at_2 = safetensors.torch.load_file(str(root / "resumed" / STATE_FILE))
    summary = train(TrainConfig(out=str(root / "resumed"), max_steps=4, **common), resume=True, say=say)
    assert summary["step"] == 4 and summary["steps_this_run"] == 2

    straight = safetensors.torch.load_file(str(root / "straight" / STATE_FILE))
    resumed = safetensors.torch.load_file(str(root / "resumed" / STATE_FILE))
    assert straight.keys() == resumed.keys() and any(k.startswith("adam.") for k in straight)
    for k in straight:  # raw weights and AdamW moments, bit for bit
        assert torch.equal(straight[k], resumed[k]), k
    assert not torch.equal(at_2["weights.net.depth_branch.out.2.weight"],
                           resumed["weights.net.depth_branch.out.2.weight"])  # steps 3-4 did train
    assert same(weights(root / "straight" / MODEL_FILE, "net"), weights(root / "resumed" / MODEL_FILE, "net"))


def test_batches_shard_ranks_and_resume_mid_epoch():
    dataset = list(range(20))
    cfg = TrainConfig(data="unused", batch_size=3, seed=7)
    take = lambda rank, start, n: [b.tolist() for _, b in zip(range(n), batches(dataset, cfg, rank, 2, start))]  # noqa
    rank0, rank1 = take(0, 0, 3), take(1, 0, 3)  # 3 batches per epoch per rank: the whole first epoch
    assert not set(sum(rank0, [])) & set(sum(rank1, []))
    assert take(0, 2, 3) == take(0, 0, 5)[2:]  # entering at step 2 crosses into epoch 1 like a straight run
    assert take(0, 3, 3) != rank0  # epoch 1 is a new permutation


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(data="unused", lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    lrs = [learning_rate(cfg, s) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3) == lrs[10]
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[110] == pytest.approx(1e-4)
    assert lrs[60] == pytest.approx(1e-4 + 0.5 * 9e-4)  # cosine midpoint


def test_cli_runs_a_stage_from_yaml_and_prints_json(setup, tmp_path, capsys):
    _, data, micro = setup
    config = tmp_path / "ae.yaml"
    config.write_text(f"stage: autoencoder\nmax-steps: 1\nbatch_size: 2\nval_batches: 1\nlpips_weight: 0\n"
                      f"data: '{data}'\ninit: ['{micro}']\n")
    assert main(["autoencoder", "--config", str(config), "--modality", "depth", "--out", str(tmp_path / "run"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 1 and summary["modality"] == "depth" and set(summary["val"]) >= {"l1_2f", "l1_8f"}
    assert "lpips_8f" not in summary["val"]  # --lpips-weight 0 from the YAML


@pytest.mark.parametrize("argv, fix", [
    (["autoencoder", "--data", "synthetic:/no/such/dir"], "not found"),
    (["diffusion", "--data", "DATA"], "needs trained autoencoders.rgb"),
    (["joint", "--data", "DATA", "--max-time", "soon"], "not a duration"),
    (["joint", "--data", "DATA", "--resume"], "nothing to resume"),
    (["diffusion", "--modality", "rgbd"], "invalid choice"),
    (["autoencoder", "--data", "DATA", "--init", "/no/such.safetensors"], "not found"),
    (["autoencoder", "--config", "CONFIG"], "unknown training setting(s) learning_rate"),
])
def test_bad_input_exits_2_with_one_line(setup, tmp_path, capsys, argv, fix):
    _, data, _ = setup
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    argv = [{"DATA": data, "CONFIG": str(tmp_path / "bad.yaml")}.get(a, a) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and fix in err, err


def test_help_lists_each_stage_s_options(capsys):
    for stage, own, foreign in [("autoencoder", "--lpips-weight", "--shared-noise"),
                                ("diffusion", "--cond-dropout", "--frames"),
                                ("joint", "--no-modality-dropout", "--modality")]:
        with pytest.raises(SystemExit) as exit_info:
            main([stage, "--help"])
        text = capsys.readouterr().out
        assert exit_info.value.code == 0 and own in text and "--max-time" in text and foreign + " " not in text


def test_export_halves_the_file_and_loads_back(chain, tmp_path, capsys):
    source, target = chain["joint"] / MODEL_FILE, tmp_path / "shipped.safetensors"
    assert main(["export", str(source), str(target), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] == "float16"
    assert target.stat().st_size < 0.6 * source.stat().st_size
    full, half = load_checkpoint(source).model.state_dict(), load_model(str(target)).state_dict()
    assert all(half[k].dtype == torch.float32 for k in half)  # loading casts back
    for k in full:
        torch.testing.assert_close(half[k], full[k], rtol=1e-3, atol=1e-4)


def test_shipped_stage_configs_are_valid():
    files = sorted((REPO / "config" / "train").glob("*.yaml"))
    assert {f.stem for f in files} >= {"autoencoder", "diffusion", "joint"}
    for f in files:
        values = read_yaml(str(f), f.stem.split("_")[0])
        cfg = TrainConfig.from_dict({"data": "synthetic:x", **values})
        assert cfg.stage == f.stem.split("_")[0] and dataclasses.asdict(cfg)["max_steps"] >= 1
