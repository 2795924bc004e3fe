"""The SyncVP file format's envelope: a safetensors file whose metadata says `format` = "syncvp" (both model
families use it; checkpoint.py builds our models from it, syncvp_core/reference/ the reference family), and the
one error every loading problem is reported as."""
from __future__ import annotations

from safetensors import SafetensorError, safe_open

FORMAT = "syncvp"
FORMAT_VERSION = "1"


class CheckpointError(RuntimeError):
    pass


def read_metadata(path) -> dict:
    """The metadata of a SyncVP checkpoint file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(e)}") from None
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path} is not a SyncVP checkpoint (no syncvp config in its metadata)")
    return metadata


def one_line(e: Exception, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + " …"
