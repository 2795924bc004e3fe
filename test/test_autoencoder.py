import pytest
import torch

from syncvp_core.autoencoder import AxisProjector, TriplaneAutoencoder
from syncvp_core.config import AutoencoderConfig, get_config
from syncvp_core.planes import TriplaneShape

SMALL = AutoencoderConfig(width=32, patch=8, layers=1, heads=2, head_dim=16, ff_mult=2, embed_dim=4,
                          projector_layers=1, projector_heads=2, projector_head_dim=16, projector_mlp=64)


@pytest.fixture(scope="module")
def autoencoder():
    torch.manual_seed(0)
    return TriplaneAutoencoder(SMALL, channels=3, resolution=32, frames=(2, 8)).eval()


@pytest.mark.parametrize("frames", [2, 8])
def test_encode_decode_shapes(autoencoder, frames):
    video = torch.rand(2, 3, frames, 32, 32) * 2 - 1
    latent = autoencoder.encode(video)
    shape = autoencoder.plane_shape(frames)
    assert shape == TriplaneShape(frames, 4, 4)
    assert latent.shape == (2, SMALL.embed_dim, shape.tokens)
    assert latent.abs().max() <= 1  # tanh latents
    recon = autoencoder.decode(latent, frames)
    assert recon.shape == video.shape
    assert recon.abs().max() <= 1


def test_depth_autoencoder_has_one_channel():
    ae = TriplaneAutoencoder(SMALL, channels=1, resolution=32, frames=(8,))
    video = torch.rand(1, 1, 8, 32, 32) * 2 - 1
    assert ae.decode(ae.encode(video), 8).shape == video.shape
    with pytest.raises(ValueError):
        ae.plane_shape(2)  # an 8-frame-only autoencoder does not serve 2-frame clips


def test_clips_are_encoded_independently(autoencoder):
    videos = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    together = autoencoder.encode(videos)
    alone = autoencoder.encode(videos[1:])
    assert torch.allclose(together[1:], alone, atol=1e-5)


def test_projector_reads_its_summary_token():
    """Without positional embeddings the summary token's output is invariant to permuting the
    collapsed axis; reading a real token (the reference's token 0) would not be."""
    torch.manual_seed(1)
    projector = AxisProjector(SMALL, length=6)
    with torch.no_grad():
        projector.pos.zero_()
    x = torch.randn(5, 6, SMALL.width)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.allclose(projector(x), projector(x[:, perm]), atol=1e-5)
    changed = x.clone()
    changed[:, 2] = torch.randn(5, SMALL.width)
    assert not torch.allclose(projector(x), projector(changed), atol=1e-3)  # but it does read the tokens


def test_decoder_broadcasts_each_plane_along_its_collapsed_axis():
    """A latent whose tw and th planes are zero decodes xy alone, which carries no time:
    with the decoder's frame embeddings zeroed, all frames must come out identical."""
    ae = TriplaneAutoencoder(SMALL, channels=3, resolution=32, frames=(8,)).eval()
    with torch.no_grad():
        ae.decoder.frame_pos.zero_()
        for proj in ae.from_latent[1:]:
            proj.bias.zero_()
    shape = ae.plane_shape(8)
    xy = torch.randn(1, SMALL.embed_dim, 4, 4)
    latent = shape.join(xy, torch.zeros(1, SMALL.embed_dim, 8, 4), torch.zeros(1, SMALL.embed_dim, 8, 4))
    video = ae.decode(latent, 8)
    assert torch.allclose(video, video[:, :, :1].expand_as(video), atol=1e-5)


def test_paper_autoencoder_parameter_count():
    cfg = get_config("paper-128")
    with torch.device("meta"):
        ae = TriplaneAutoencoder(cfg.autoencoder, 3, cfg.resolution, (cfg.target_frames,))
    count = sum(p.numel() for p in ae.parameters())
    assert abs(count - 23.0e6) / 23.0e6 < 0.01


def test_autoencoder_fits_a_clip():
    """Gradients reach every part: a few Adam steps on one clip cut the reconstruction error."""
    torch.manual_seed(2)
    ae = TriplaneAutoencoder(SMALL, channels=1, resolution=32, frames=(8,))
    ramp = torch.linspace(-0.8, 0.8, 32)
    video = (ramp[None, :] + ramp[:, None] * torch.linspace(0.2, 1.0, 8)[:, None, None]).clamp(-1, 1)[None, None]
    optimiser = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = (ae.decode(ae.encode(video), 8) - video).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.parameters())
