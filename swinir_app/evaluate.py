"""Evaluation with the SwinIR paper's protocol: PSNR/SSIM (Y and RGB), PSNR-B and LPIPS; NIQE without GT.

    python -m swinir_app.evaluate --model SPEC --gt DIR [--lq DIR] [--scale K] [--task sr|denoise|jpeg]
           [--noise 15|25|50] [--jpeg Q] [--metrics psnr ssim psnrb lpips niqe] [--self-ensemble]
           [--tile N] [--save-images DIR] [--out results.json] [--csv per_image.csv]
    python -m swinir_app.evaluate --model SPEC --lq DIR [--metrics niqe]     (real photos: no GT)
    python -m swinir_app.evaluate -opt options/test_x4.yml

The protocol is that of the official ``main_test_swinir.py``: images read with OpenCV; the input
mirror-padded to a window multiple (always, as the official script) and the output cropped back;
outputs clamped and rounded to uint8; the GT cropped to LQ x scale; ``scale`` border pixels dropped
for SR and none for denoising/JPEG; basicsr's PSNR/SSIM on BT.601 Y and on RGB.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from torch import nn

from .cli import Parser, add_debug, add_device, add_model, add_threads, add_tiles, fail
from .engine import SettingError
from .errors import UserError
from .options import Options, OptionsError
from .options import load_options as _load_options
from .protocol.evaluation import BICUBIC, TASKS, EvalError, EvalResult, ModelSpec, evaluate
from .protocol.metrics import LPIPS_NETS, METRICS

# The library lives in swinir_app.protocol; this module is its command line (and keeps the documented
# ``from swinir_app.evaluate import evaluate``).
__all__ = ["EvalError", "EvalResult", "evaluate", "main", "load_options", "run_options"]


# ---------------------------------------------------------------------------------------------
# Options files (BasicSR test-options style), read by the one schema of swinir_app.options


def load_options(path: Union[str, os.PathLike]) -> Options:
    """A BasicSR-style test options file, parsed and checked. Relative paths in it are relative to the
    current directory, as in BasicSR. Raises :class:`~swinir_app.options.OptionsError` (one line)."""
    return _load_options(path, purpose="test")


def _check_network_g(opts: Options, model: nn.Module) -> None:
    """network_g, when given, must describe the loaded model in what it names (img_size aside, which
    changes nothing at inference)."""
    net = opts.network_g
    if net.given and model.config is None:  # another architecture, loaded through spandrel
        raise OptionsError(f"{opts.source}: network_g describes a {net.config.name} network, and the model is "
                           f"{model.capabilities.arch}; leave network_g out to evaluate it")
    for key in net.given:
        if key == "img_size":
            continue
        a, b = getattr(net.config, key), getattr(model.config, key)
        if a != b:
            raise OptionsError(f"{opts.source}: network_g.{key} is {a!r} but the model has {b!r}")


def run_options(opts: Options, *, model: Optional[str] = None, **overrides: Any) -> List[EvalResult]:
    """Evaluate every dataset of ``opts``; ``model`` (a spec) replaces path.pretrain_network_g and network_g."""
    spec = model or opts.path.pretrain_network_g
    if spec is None:
        raise OptionsError(f"{opts.source}: path.pretrain_network_g is not set (or pass --model)")
    label = str(spec)
    if str(spec).lower() != BICUBIC:
        from .zoo import ModelLoadError, load_model

        try:
            loaded: ModelSpec = load_model(spec, device="cpu", weights_dir=overrides.get("weights_dir"))
        except (ModelLoadError, OSError) as e:
            raise EvalError(f"cannot load model {label!r}: {e}") from None
        if model is None and opts.network_g is not None:
            _check_network_g(opts, loaded)
    else:
        loaded = BICUBIC
    pbar = opts.val.pbar if opts.val is not None and "pbar" in opts.val.model_fields_set else True
    settings = dict(scale=opts.scale, task=opts.task, noise=opts.noise, jpeg=opts.jpeg, seed=opts.manual_seed or 0,
                    metrics=opts.metric_names() or None, lpips_net=opts.lpips_net(),
                    crop_border=opts.crop_border(), y_channel=opts.y_channel(), progress=pbar)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    save_root = settings.pop("save_images", None)
    sets = opts.test_sets
    results = []
    for ds in sets:
        if save_root is not None:
            save = Path(save_root) / ds.name if len(sets) > 1 else Path(save_root)
        else:
            save = (Path(opts.path.results_root or Path("results") / opts.name) / ds.name
                    if opts.val is not None and opts.val.save_img else None)
        template = None if ds.filename_tmpl == "{}" else ds.filename_tmpl  # "{}" is <stem>: tried anyway
        results.append(evaluate(loaded, ds.dataroot_gt, lq=ds.dataroot_lq, lq_template=template,
                                name=ds.name, model_label=label, save_images=save, **settings))
    return results


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m swinir_app.evaluate",
               description="Score a model with the SwinIR paper's protocol (PSNR/SSIM on Y and RGB, PSNR-B, LPIPS).")
    p.add_argument("-opt", "--opt", type=Path, metavar="YML", help="a BasicSR-style test options file")
    add_model(p, default=None, help="zoo name, checkpoint file, training folder, or 'bicubic' (no weights)")
    p.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth images")
    p.add_argument("--lq", type=Path, metavar="DIR",
                   help="input images (SR: <name>x<K>.<ext> or <name>.<ext>); default: made from the GT. Alone "
                        "(no --gt): real photos, scored with NIQE")
    p.add_argument("--scale", type=int, metavar="K", help="SR factor (default: the model's; required for bicubic)")
    p.add_argument("--task", choices=TASKS, help="default: the model's")
    p.add_argument("--noise", type=float, metavar="SIGMA",
                   help="denoising: sigma on 0-255 (default: the model's name, e.g. color-dn-25, else 15)")
    p.add_argument("--jpeg", type=int, metavar="Q",
                   help="JPEG: quality of the input (default: the model's name, e.g. gray-jpeg-10, else 40)")
    p.add_argument("--degradation", metavar="SPEC",
                   help="SR: make a real-world-like LQ from the GT instead of the clean bicubic one, e.g. "
                        "blur:1.5,noise:10,jpeg:50 (blur sigma in HR pixels, noise sigma on 0-255, JPEG quality)")
    p.add_argument("--gray-noise", action="store_true",
                   help="denoising with a color model: one noise plane for R, G and B, as a gray photo carries it "
                        "(the official script draws noise per channel)")
    p.add_argument("--seed", type=int, default=0, help="denoising and --degradation: noise seed, reset for every "
                                                       "image (0)")
    p.add_argument("--metrics", nargs="+", choices=METRICS, metavar="M",
                   help=f"of {', '.join(METRICS)} (default: psnr ssim, plus psnrb for JPEG; niqe without --gt)")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS backbone (alex)")
    p.add_argument("--crop-border", type=int, metavar="N", help="default: scale for SR, 0 otherwise")
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations")
    add_tiles(p, help="restore in N x N input tiles, 'auto' from free memory (saves memory; changes results "
                      "slightly), or 'none' (the whole image, as the paper; the default)")
    add_device(p, precision="fp32", precision_help="fp32 (default: the published numbers), auto, bf16, fp16 "
                                                      "or int8 (CPUs: the transformer linears in int8)")
    add_threads(p)
    p.add_argument("--save-images", type=Path, metavar="DIR", help="write the outputs as PNG")
    p.add_argument("--out", type=Path, metavar="JSON", help="summary, protocol and per-image numbers")
    p.add_argument("--csv", type=Path, metavar="CSV", help="per-image numbers")
    p.add_argument("--per-image", action="store_true", help="print a row per image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug(p)
    return p


def _suffixed(path: Optional[Path], name: str, many: bool) -> Optional[Path]:
    """With several datasets, one file each: results.json -> results_Set5.json."""
    return path.with_name(f"{path.stem}_{name}{path.suffix}") if path and many else path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    common = dict(self_ensemble=args.self_ensemble, tile=args.tile, tile_overlap=args.tile_overlap,
                  precision=args.precision, device=args.device, weights_dir=args.weights_dir, threads=args.threads)
    try:
        if args.opt:
            if args.gt or args.lq:
                raise EvalError("-opt takes its folders from the options file: drop --gt/--lq")
            results = run_options(load_options(args.opt), model=args.model, save_images=args.save_images,
                                  progress=False if args.no_progress else None, **common)
        else:
            if not args.model or not (args.gt or args.lq):
                raise EvalError("need --model and --gt, or --model and --lq alone for NIQE (or -opt FILE)")
            results = [evaluate(args.model, args.gt, lq=args.lq, scale=args.scale,
                                task=args.task, noise=args.noise, jpeg=args.jpeg, seed=args.seed,
                                metrics=args.metrics, lpips_net=args.lpips_net, crop_border=args.crop_border,
                                save_images=args.save_images, progress=not args.no_progress,
                                degradation=args.degradation, gray_noise=args.gray_noise, **common)]
    except UserError as e:
        if args.debug:  # the exception itself, for a debugger or a library caller
            raise
        return fail(e.flag() if isinstance(e, SettingError) else str(e))
    many = len(results) > 1
    for r in results:
        print(r.table(per_image=args.per_image))
        if args.out:
            r.write_json(_suffixed(args.out, r.protocol.dataset, many))
        if args.csv:
            r.write_csv(_suffixed(args.csv, r.protocol.dataset, many))
    failed = sum(len(r.failures) for r in results)
    if failed:
        print(f"{failed} image(s) failed (listed above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
