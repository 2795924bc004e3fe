"""Latents of the training clips, for stages 2 and 3 (which never change the autoencoders).

`measure_latent_statistics` sets a model's per-channel latent mean and std (`model.LatentStatistics`) from the
training clips after stage 1. `LatentCache` encodes every training clip once per modality and clip length and
serves batches of standardised latents in place of pixels, so a diffusion step costs only the UNet; the cache is
kept in the run folder (keyed by a hash of the autoencoder weights and statistics) so a resumed run reuses it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from syncvp_core.model import SyncVP

CACHE_FILE = "latents.safetensors"
STATISTICS_CLIPS = 512  # clips measured for the latent statistics (spread over the training set)


def _windows(model: SyncVP) -> dict[str, slice]:
    cond, target = model.cfg.cond_frames, model.cfg.target_frames
    return {"cond": slice(0, cond), "target": slice(cond, cond + target)}


@torch.no_grad()
def encode_dataset(model: SyncVP, dataset: Dataset, modalities, batch_size: int = 32, desc: str = "encoding",
                   standardised: bool = True) -> dict[str, torch.Tensor]:
    """'<modality>.cond' / '<modality>.target' -> N×c×L latents of every clip of `dataset`."""
    device = next(model.parameters()).device
    parts: dict[str, list] = {}
    encode = model.encode if standardised else model.encode_raw
    for batch in tqdm(DataLoader(dataset, batch_size), desc=desc, unit="batch", leave=False):
        for modality in modalities:
            video = batch[modality].to(device)
            for window, frames in _windows(model).items():
                parts.setdefault(f"{modality}.{window}", []).append(encode(modality, video[:, frames]).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def measure_latent_statistics(model: SyncVP, dataset: Dataset, modality: str) -> dict:
    """Set the latent statistics of `modality` (both clip lengths) from up to STATISTICS_CLIPS training clips;
    returns them as plain numbers for the run summary."""
    count = min(len(dataset), STATISTICS_CLIPS)
    spread = Subset(dataset, [i * len(dataset) // count for i in range(count)])
    raw = encode_dataset(model, spread, (modality,), desc=f"latent statistics {modality}", standardised=False)
    summary = {}
    for window, frames in _windows(model).items():
        length = frames.stop - frames.start
        stats = model.latent_stats[model.stats_key(modality, length)]
        stats.measure(raw[f"{modality}.{window}"].to(stats.mean.device))
        summary[f"{length}f"] = {"mean": stats.mean.flatten().tolist(), "std": stats.std.flatten().tolist()}
    return summary


def autoencoder_fingerprint(model: SyncVP, modalities) -> str:
    """Hash of the autoencoder weights and latent statistics the cached latents came from."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(("autoencoders.", "latent_stats.")) and any(f".{m}" in name for m in modalities):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class LatentCache(Dataset):
    """The training clips as dicts of standardised latents ('rgb.cond', 'rgb.target', …), encoded once."""

    def __init__(self, model: SyncVP, dataset: Dataset, modalities, folder: Path, say=print):
        self.tensors = self._load_or_encode(model, dataset, tuple(modalities), Path(folder) / CACHE_FILE, say)
        self.length = len(next(iter(self.tensors.values())))

    @staticmethod
    def _load_or_encode(model, dataset, modalities, path: Path, say) -> dict[str, torch.Tensor]:
        key = autoencoder_fingerprint(model, modalities)
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("fingerprint") == key:
                    say(f"latent cache: reusing {path}")
                    return {k: f.get_tensor(k).float() for k in f.keys()}
        except (OSError, SafetensorError):
            pass  # no cache yet (or a broken one): encode
        tensors = encode_dataset(model, dataset, modalities, desc="latent cache")
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(path),
                                    metadata={"fingerprint": key})
        # train on exactly what a resumed run will read back
        return {k: v.half().float() for k, v in tensors.items()}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return {k: v[index] for k, v in self.tensors.items()}
