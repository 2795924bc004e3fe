"""The reference-compatible model family: the authors' SyncVP maths (PallottaEnrico/SyncVP at fdbf7ec), quirks
included, behind the interface of `syncvp_core.model.SyncVP`, so the released checkpoints run in the sampler,
rollout, evaluation and node unchanged. Our own model family (`syncvp_core.model`) stays free of compat switches.

Modules: `config` (architecture), `codec` (depth <-> 8-bit disparity), `autoencoder`, `unet`, `stca`, `model`,
`load` (the five release `.pth` files), `convert` (our safetensors format). docs/reference-checkpoints.md.
"""
from .codec import DepthCodec
from .config import PAPER_128, ReferenceConfig
from .convert import convert_directory, load_converted, save_converted
from .load import build, load_directory
from .model import ReferenceSyncVP

__all__ = ["DepthCodec", "PAPER_128", "ReferenceConfig", "ReferenceSyncVP", "build", "convert_directory",
           "load_converted", "load_directory", "save_converted"]
