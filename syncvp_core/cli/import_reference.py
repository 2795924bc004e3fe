"""syncvp-import-reference: convert the authors' released SyncVP checkpoints to one file of our format.

    syncvp-import-reference DIR --out FILE.safetensors [--dtype fp16|fp32] [--depth-codec disparity|raw_u8]
                            [--depth-scale M]

DIR holds ae_{rgb,depth}_{2f,8f}_<name>.pth and syncvp_<name>.pth. The output loads with
`syncvp_core.checkpoint.load_model(FILE)` and runs in the node (`checkpoint:=FILE`). docs/reference-checkpoints.md.
"""
from __future__ import annotations

import sys

from syncvp_core.checkpoint import CheckpointError
from syncvp_core.arguments import POSITIVE, OneLineParser
from syncvp_core.reference import DepthCodec, convert_directory
from syncvp_core.reference.codec import CODEC_KINDS
from syncvp_core.reference.convert import DTYPES


def main(argv=None) -> int:
    parser = OneLineParser(prog="syncvp-import-reference", description=__doc__.splitlines()[0])
    parser.add_argument("directory", metavar="DIR", help="folder with the five released .pth files")
    parser.add_argument("--out", required=True, metavar="FILE", help="output .safetensors file")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp16",
                        help="weight precision in the file (default fp16; the model always computes in fp32)")
    parser.add_argument("--depth-codec", choices=CODEC_KINDS, default=DepthCodec.kind,
                        help="disparity: metres <-> u8 = scale/depth (default); raw_u8: depth tensors are 8-bit values")
    parser.add_argument("--depth-scale", type=POSITIVE, default=DepthCodec.scale, metavar="M",
                        help=f"disparity codec scale in m per 8-bit unit (default {DepthCodec.scale:.2f}: the "
                             "Cityscapes camera fx*baseline, one unit = one full-resolution disparity pixel)")
    args = parser.parse_args(argv)
    try:
        path = convert_directory(args.directory, args.out, args.dtype, DepthCodec(args.depth_codec, args.depth_scale))
    except (CheckpointError, OSError) as e:
        print(f"syncvp-import-reference: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
