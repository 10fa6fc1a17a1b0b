"""Export a model to ONNX, verified against PyTorch before the file is written.

    python -m swinir_app.export MODEL OUT.onnx [--opset 17] [--precision fp32|fp16|int8]
                                [--fixed-size H W] [--batch N] [--overwrite]

MODEL is anything ``load_model`` takes (zoo name, checkpoint file, training folder, transformers Swin2SR
folder, or a file of another architecture that spandrel recognises: ESRGAN, Compact, SPAN, ...). The graph
maps a float32 image in [0, 1], (batch, C, H, W) with any H, W >= 1, to the restored image in [0, 1]; padding
is done inside (for another architecture, by the runner: see :mod:`swinir_app.deploy`, also for what is checked).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from .cli import Parser, add_debug, add_weights_dir, one_line_errors
from .deploy import FP16_MAX, OPSET, export_onnx
from .precision import EXPORT_PRECISIONS
from .errors import UserError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m swinir_app.export",
                    description="Export a SwinIR, Swin2SR, HAT or DAT model, or one of another architecture that "
                                "spandrel recognises (ESRGAN, Compact, SPAN, ...), to ONNX; ONNX Runtime checks the "
                                "graph against PyTorch at three sizes before the file is written.")
    parser.add_argument("model", help="zoo name, checkpoint file, training folder or transformers folder; a file of "
                                      "another architecture that spandrel recognises")
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset, 14 to 21 (default: {OPSET})")
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                        help="fp32 (default), fp16 (the body's matmuls; input and output stay float32) or int8 "
                             "(SwinIR-family networks: the linears quantised by ONNX Runtime, dynamic, for CPUs). "
                             "bf16 is refused: ONNX Runtime cannot run it to verify it")
    parser.add_argument("--fixed-size", type=int, nargs=2, metavar=("H", "W"),
                        help="a fixed input size, for fixed-shape engines such as TensorRT (default: any size)")
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="a fixed batch size (default: dynamic, verified exact at batch 2)")
    parser.add_argument("--name", help="model name stored in the metadata (default: the model's stem)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_weights_dir(parser)
    add_debug(parser)
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"{text} ...", file=sys.stderr, flush=True)

    with one_line_errors(args.debug, (UserError, OSError)):
        r = export_onnx(args.model, args.output, opset=args.opset, precision=args.precision, batch=args.batch,
                        fixed_size=tuple(args.fixed_size) if args.fixed_size else None, name=args.name,
                        weights_dir=args.weights_dir, overwrite=args.overwrite, progress=say)
    c = r.capabilities
    for check in r.checks:
        b, ch, h, w = check.shape
        print(f"checked {b}x{ch}x{h}x{w}: max abs difference {check.max_diff:.2e}, PSNR {check.psnr:.1f} dB "
              f"against PyTorch fp32", file=sys.stderr)
    if r.precision == "fp16":
        level = "warning" if r.activation_peak > FP16_MAX / 8 else "note"
        print(f"{level}: activations reach {r.activation_peak:.3g} in fp32 (fp16 holds up to {FP16_MAX:.0f}); the "
              f"residual groups' outputs stay in fp16 here, so check real images", file=sys.stderr)
    size = "x".join(map(str, r.fixed_size)) if r.fixed_size else "any size"
    print(f"wrote {r.path}: {c.arch} {c.task} x{c.scale}, {r.precision}, opset {r.opset}, batch "
          f"{r.batch or 'dynamic'}, {size}; {r.nodes} nodes (traced {r.nodes_traced}), {r.bytes / 2**20:.1f} MiB, "
          f"in {r.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
