"""Convert any SwinIR, Swin2SR, HAT or DAT checkpoint to .safetensors with its config, a model of another
architecture (through spandrel) to .safetensors, or a Swin2SR to a transformers folder.

    python -m swinir_app.convert IN OUT.safetensors [--name NAME] [--img-range R] [--mix MODEL=W]
    python -m swinir_app.convert IN OUT_DIR --to transformers

IN is anything ``load_model`` takes: a zoo name, a .pth/.pt/.ckpt/.safetensors file, a training
folder or a transformers Swin2SR folder. A .safetensors output loads without config inference, and
keeps the official key names; a transformers folder loads with
``Swin2SRForImageSuperResolution.from_pretrained(OUT_DIR)``. ``--mix MODEL=W`` writes the mixed network,
(1 - W) x IN + W x MODEL (two models of one architecture and config; see ``swinir_app.zoo.mix_models``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from torch import nn

from . import hf
from .checkpoint import ModelLoadError, save_safetensors
from .cli import Parser, add_debug, add_weights_dir, one_line_errors
from .errors import UserError
from .mixing import mix_into
from .network import SwinIRConfig
from .network.capabilities import Capabilities
from .zoo import build_model, check_mix, load_file, load_model, resolve, spec_file

FORMATS = ("safetensors", "transformers")


def convert(spec: str, out: Union[str, Path], *, name: Optional[str] = None, img_range: Optional[float] = None,
            weights_dir: Optional[Path] = None, to: str = "safetensors", description: Optional[str] = None,
            mix: Union[None, str, Tuple[str, float]] = None) -> Union[SwinIRConfig, Capabilities]:
    """Write the checkpoint that ``spec`` names to ``out``: a .safetensors file, or with
    ``to="transformers"`` a transformers folder (Swin2SR only). Returns the config written, or for a model
    of another architecture (its tensors written as spandrel reads them, which loads back the same network)
    what it declares. ``mix=(MODEL, W)`` (or ``"MODEL=W"``) writes the weights (1 - W) x ``spec`` + W x MODEL.

    Raises:
        ModelLoadError: one line: the input cannot be loaded, the output name is wrong, or the model has
            no transformers equivalent.
    """
    out = Path(out)
    if to not in FORMATS:
        raise ModelLoadError(f"--to must be one of {', '.join(FORMATS)}, got {to!r}")
    if to == "safetensors" and out.suffix != ".safetensors":
        raise ModelLoadError(f"the output must be a .safetensors file, got {out}")
    if to == "transformers" and out.exists() and not out.is_dir():
        raise ModelLoadError(f"the output must be a folder for --to transformers, and {out} is a file")
    metadata = {"name": name or Path(str(spec)).stem, **({"description": description} if description else {})}
    if mix is not None:
        other, w = check_mix(mix)  # refused before anything is loaded
        metadata["mix"] = f"{other}={w:g}"
    path = Path(spec_file(spec, weights_dir)).expanduser()
    if to == "safetensors" and path.is_file():
        loaded = load_file(path, label=str(spec))
        if mix is not None and isinstance(loaded, nn.Module):
            mix_into(loaded, load_model(other, weights_dir=weights_dir), w, (str(spec), str(other)))
        if isinstance(loaded, nn.Module):  # another architecture, loaded through spandrel
            if img_range is not None:
                raise ModelLoadError(f"{spec}: --img-range applies to SwinIR-family models, and this is a "
                                     f"{loaded.capabilities.arch} model")
            save_safetensors(out, loaded.net.state_dict(), None,
                             {**metadata, "source": path.name, "architecture": loaded.capabilities.arch})
            return loaded.capabilities
    ckpt = resolve(spec, weights_dir=weights_dir, img_range=img_range)
    # Building the model proves that the config fits the weights before anything is written,
    # and its state dict carries every official key (derived buffers included).
    model = build_model(ckpt)
    if mix is not None:
        mix_into(model, load_model(other, weights_dir=weights_dir), w, (str(spec), str(other)))
    if to == "transformers":
        try:
            hf.write_folder(out, model.state_dict(), ckpt.config)
        except hf.LayoutError as e:
            raise ModelLoadError(f"{ckpt.source}: {e}") from None
        return ckpt.config
    save_safetensors(out, model.state_dict(), ckpt.config, {**metadata, "source": Path(ckpt.source).name})
    return ckpt.config


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m swinir_app.convert",
                    description="Convert a SwinIR, Swin2SR, HAT or DAT checkpoint to .safetensors with its config, "
                                "another architecture's model to .safetensors, or a Swin2SR to a transformers "
                                "folder.")
    parser.add_argument("input", help="zoo name, checkpoint file, training folder or transformers folder")
    parser.add_argument("output", type=Path, help="the .safetensors file (or, with --to transformers, the folder) "
                                                  "to write")
    parser.add_argument("--to", choices=FORMATS, default="safetensors",
                        help="safetensors (default), or transformers: a Swin2SRForImageSuperResolution folder")
    parser.add_argument("--name", help="model name stored in the metadata (default: the input's stem)")
    parser.add_argument("--img-range", type=float, default=None, help="override the stored or inferred img_range")
    parser.add_argument("--description", help="what the model is for, in a few words (stored in the metadata; "
                                              "the web app shows it beside the name)")
    parser.add_argument("--mix", metavar="MODEL=W", help="write the weights (1 - W) x INPUT + W x MODEL, e.g. "
                                                          "bundled-real-x4=0.3 (W from 0 to 1; the same architecture "
                                                          "and config)")
    add_weights_dir(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    with one_line_errors(args.debug, (UserError, OSError)):
        c = convert(args.input, args.output, name=args.name, img_range=args.img_range,
                    weights_dir=args.weights_dir, to=args.to, description=args.description, mix=args.mix)
    if isinstance(c, Capabilities):
        print(f"wrote {args.output}: {c.arch} {c.task} x{c.scale} (another architecture, loaded through spandrel)")
        return 0
    print(f"wrote {args.output}: {c.name} {c.task} x{c.scale}, {c.upsampler or 'no upsampler'}, embed {c.embed_dim}, "
          f"depths {list(c.depths)}, window {c.window_size}, img_range {c.img_range:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
