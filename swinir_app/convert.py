"""Convert any SwinIR checkpoint to .safetensors with its config in the metadata.

    python -m swinir_app.convert IN OUT.safetensors [--name NAME] [--img-range R]

IN is anything ``load_model`` takes: a zoo name, a .pth/.pt/.ckpt/.safetensors file or a training
folder. The output loads without config inference, and keeps the official key names.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from .checkpoint import ModelLoadError, save_safetensors
from .network import SwinIRConfig
from .cli import Parser, add_debug, add_weights_dir, one_line_errors
from .zoo import build_model, resolve


def convert(spec: str, out: Path, *, name: Optional[str] = None, img_range: Optional[float] = None,
            weights_dir: Optional[Path] = None) -> SwinIRConfig:
    """Write the checkpoint that ``spec`` names to ``out`` (.safetensors); returns the config stored."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ModelLoadError(f"the output must be a .safetensors file, got {out}")
    ckpt = resolve(spec, weights_dir=weights_dir, img_range=img_range)
    # Building the model proves that the config fits the weights before anything is written,
    # and its state dict carries every official key (derived buffers included).
    model = build_model(ckpt)
    metadata = {"name": name or Path(str(spec)).stem, "source": Path(ckpt.source).name}
    save_safetensors(out, model.state_dict(), ckpt.config, metadata)
    return ckpt.config


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m swinir_app.convert",
                    description="Convert a SwinIR checkpoint to .safetensors with its config.")
    parser.add_argument("input", help="zoo name, checkpoint file or training folder")
    parser.add_argument("output", type=Path, help="the .safetensors file to write")
    parser.add_argument("--name", help="model name stored in the metadata (default: the input's stem)")
    parser.add_argument("--img-range", type=float, default=None, help="override the stored or inferred img_range")
    add_weights_dir(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    with one_line_errors(args.debug, (ModelLoadError, OSError)):
        c = convert(args.input, args.output, name=args.name, img_range=args.img_range,
                    weights_dir=args.weights_dir)
    print(f"wrote {args.output}: {c.task} x{c.scale}, {c.upsampler or 'no upsampler'}, embed {c.embed_dim}, "
          f"depths {list(c.depths)}, window {c.window_size}, img_range {c.img_range:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
