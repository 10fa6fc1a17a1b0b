"""Evaluation with the SwinIR paper's protocol: PSNR/SSIM (Y and RGB), PSNR-B and LPIPS.

    python -m swinir_app.evaluate --model SPEC --gt DIR [--lq DIR] [--scale K] [--task sr|denoise|jpeg]
           [--noise 15|25|50] [--jpeg Q] [--metrics psnr ssim psnrb lpips] [--self-ensemble]
           [--tile N] [--save-images DIR] [--out results.json] [--csv per_image.csv]
    python -m swinir_app.evaluate -opt options/test_x4.yml

The protocol is that of the official ``main_test_swinir.py``: images read with OpenCV; the input
mirror-padded to a window multiple (always, as the official script) and the output cropped back;
outputs clamped and rounded to uint8; the GT cropped to LQ x scale; ``scale`` border pixels dropped
for SR and none for denoising/JPEG; basicsr's PSNR/SSIM on BT.601 Y and on RGB.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from torch import nn

from .engine import PRECISIONS
from .protocol.evaluation import BICUBIC, TASKS, EvalError, EvalResult, ModelSpec, evaluate
from .protocol.metrics import LPIPS_NETS, METRICS, LPIPSWeightsMissing

# The library lives in swinir_app.protocol; this module is its command line (and keeps the documented
# ``from swinir_app.evaluate import evaluate``).
__all__ = ["EvalError", "EvalResult", "evaluate", "main", "load_options", "run_options"]


# ---------------------------------------------------------------------------------------------
# Options files (BasicSR test-options style)


class OptionsError(EvalError):
    """An options file that cannot be used as written."""


@dataclass(frozen=True)
class MetricOptions:
    type: str
    crop_border: Optional[int] = None
    test_y_channel: bool = True
    better: str = "higher"
    net: str = "alex"  # LPIPS only


@dataclass(frozen=True)
class DatasetOptions:
    name: str
    dataroot_gt: Path
    dataroot_lq: Optional[Path] = None
    type: str = "PairedImageDataset"
    filename_tmpl: Optional[str] = None
    io_backend: Mapping[str, str] = field(default_factory=lambda: {"type": "disk"})
    phase: str = "test"


@dataclass(frozen=True)
class PathOptions:
    pretrain_network_g: Optional[str] = None
    strict_load_g: bool = True


@dataclass(frozen=True)
class ValOptions:
    metrics: Mapping[str, MetricOptions] = field(default_factory=dict)
    save_img: bool = False
    suffix: Optional[str] = None
    pbar: bool = True


@dataclass(frozen=True)
class TestOptions:
    """A BasicSR-style test options file, parsed and checked once."""

    name: str
    datasets: Tuple[DatasetOptions, ...]
    path: PathOptions
    val: ValOptions
    scale: Optional[int] = None
    task: Optional[str] = None
    noise: Optional[float] = None
    jpeg: Optional[int] = None
    manual_seed: int = 0
    network_g: Optional[Mapping[str, Any]] = None
    model_type: str = "SwinIRModel"
    num_gpu: int = 0
    source: str = ""

    def metric_names(self) -> Tuple[str, ...]:
        return tuple(_METRIC_TYPES[m.type] for m in self.val.metrics.values())

    def crop_border(self) -> Optional[int]:
        borders = {m.crop_border for m in self.val.metrics.values() if m.crop_border is not None}
        if len(borders) > 1:
            raise OptionsError(f"{self.source}: val.metrics use different crop_border values {sorted(borders)}; "
                               f"one protocol has one")
        return borders.pop() if borders else None

    def y_channel(self) -> bool:
        flags = {m.test_y_channel for m in self.val.metrics.values() if m.type != "calculate_lpips"}
        if len(flags) > 1:
            raise OptionsError(f"{self.source}: val.metrics mix test_y_channel true and false")
        return flags.pop() if flags else True

    def lpips_net(self) -> str:
        nets = [m.net for m in self.val.metrics.values() if m.type == "calculate_lpips"]
        return nets[0] if nets else "alex"


_METRIC_TYPES = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "calculate_psnrb": "psnrb",
                 "calculate_lpips": "lpips"}


def _build(cls, data: Any, where: str, **fixed):
    """``cls(**data)`` with a one-line error naming unknown and missing keys."""
    if not isinstance(data, Mapping):
        raise OptionsError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)} - set(fixed) - {"source"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise OptionsError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING} - set(fixed)
    missing = sorted(required - set(data))
    if missing:
        raise OptionsError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**data, **fixed)


def load_options(path: Union[str, Path]) -> TestOptions:
    """Parse a test options file. Relative paths in it are relative to the file's own folder."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise OptionsError(f"cannot read options file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise OptionsError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    where = str(path)
    if not isinstance(raw, Mapping):
        raise OptionsError(f"{where}: expected a mapping at the top level")
    base = path.resolve().parent
    rel = lambda p: None if p is None else Path(os.path.normpath(base / Path(str(p)).expanduser()))  # noqa: E731

    datasets_raw = raw.get("datasets")
    if not isinstance(datasets_raw, Mapping) or not datasets_raw:
        raise OptionsError(f"{where}: 'datasets' must map names (test_1, ...) to datasets")
    datasets = []
    for key, d in datasets_raw.items():
        ds = _build(DatasetOptions, d, f"{where}: datasets.{key}")
        if ds.type != "PairedImageDataset":
            raise OptionsError(f"{where}: datasets.{key}.type {ds.type!r}: only PairedImageDataset "
                               f"(GT folder, optional LQ folder) can be scored")
        if dict(ds.io_backend) != {"type": "disk"}:
            raise OptionsError(f"{where}: datasets.{key}.io_backend: only {{type: disk}} is supported")
        datasets.append(dataclasses.replace(ds, dataroot_gt=rel(ds.dataroot_gt), dataroot_lq=rel(ds.dataroot_lq)))

    path_opts = _build(PathOptions, raw.get("path") or {}, f"{where}: path")
    if not path_opts.strict_load_g:
        raise OptionsError(f"{where}: path.strict_load_g false: evaluation needs every weight")
    spec = path_opts.pretrain_network_g
    if spec is not None and (base / str(spec)).exists():  # a file or folder beside the options; else a zoo name
        path_opts = dataclasses.replace(path_opts, pretrain_network_g=str(base / str(spec)))

    val_raw = dict(raw.get("val") or {})
    metrics = {}
    for key, m in (val_raw.pop("metrics", None) or {}).items():
        mo = _build(MetricOptions, m, f"{where}: val.metrics.{key}")
        if mo.type not in _METRIC_TYPES:
            raise OptionsError(f"{where}: val.metrics.{key}.type {mo.type!r}; known: {', '.join(_METRIC_TYPES)}")
        metrics[key] = mo
    val = _build(ValOptions, val_raw, f"{where}: val", metrics=metrics)

    top = {k: v for k, v in raw.items() if k not in ("datasets", "path", "val")}
    network_g = top.get("network_g")
    if network_g is not None and (not isinstance(network_g, Mapping) or network_g.get("type", "SwinIR") != "SwinIR"):
        raise OptionsError(f"{where}: network_g must describe a SwinIR (type: SwinIR)")
    opts = _build(TestOptions, top, where, datasets=tuple(datasets), path=path_opts, val=val, source=where)
    if opts.task is not None and opts.task not in TASKS:
        raise OptionsError(f"{where}: task must be one of {', '.join(TASKS)}, got {opts.task!r}")
    opts.crop_border(), opts.y_channel()  # fail now, not after loading the model
    return opts


def _check_network_g(opts: TestOptions, model: nn.Module) -> None:
    """network_g, when given, must describe the loaded model (img_size aside, which changes nothing)."""
    from .network import SwinIRConfig

    given = {k: v for k, v in opts.network_g.items() if k != "type"}
    try:
        expected = SwinIRConfig(**given)
    except (TypeError, ValueError) as e:
        raise OptionsError(f"{opts.source}: network_g: {e}") from None
    for key in given:
        if key == "img_size":
            continue
        a, b = getattr(expected, key), getattr(model.config, key)
        if a != b:
            raise OptionsError(f"{opts.source}: network_g.{key} is {a!r} but the model has {b!r}")


def run_options(opts: TestOptions, *, model: Optional[str] = None, **overrides: Any) -> List[EvalResult]:
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
    settings = dict(scale=opts.scale, task=opts.task, noise=opts.noise, jpeg=opts.jpeg, seed=opts.manual_seed,
                    metrics=opts.metric_names() or None, lpips_net=opts.lpips_net(),
                    crop_border=opts.crop_border(), y_channel=opts.y_channel(), progress=opts.val.pbar)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    save_root = settings.pop("save_images", None)
    results = []
    for ds in opts.datasets:
        if save_root is not None:
            save = Path(save_root) / ds.name if len(opts.datasets) > 1 else Path(save_root)
        else:
            save = Path("results") / opts.name / ds.name if opts.val.save_img else None
        results.append(evaluate(loaded, ds.dataroot_gt, lq=ds.dataroot_lq, lq_template=ds.filename_tmpl,
                                name=ds.name, model_label=label, save_images=save, **settings))
    return results


# ---------------------------------------------------------------------------------------------
# CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every other usage error
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _tile(value: str) -> Union[int, str]:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in pixels or 'auto', got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m swinir_app.evaluate",
                description="Score a model with the SwinIR paper's protocol (PSNR/SSIM on Y and RGB, PSNR-B, "
                            "LPIPS).")
    p.add_argument("-opt", "--opt", type=Path, metavar="YML", help="a BasicSR-style test options file")
    p.add_argument("--model", help="zoo name, checkpoint file, training folder, or 'bicubic' (no weights)")
    p.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth images")
    p.add_argument("--lq", type=Path, metavar="DIR",
                   help="input images (SR: <name>x<K>.<ext> or <name>.<ext>); default: made from the GT")
    p.add_argument("--scale", type=int, metavar="K", help="SR factor (default: the model's; required for bicubic)")
    p.add_argument("--task", choices=TASKS, help="default: the model's")
    p.add_argument("--noise", type=float, metavar="SIGMA",
                   help="denoising: sigma on 0-255 (default: the model's name, e.g. color-dn-25, else 15)")
    p.add_argument("--jpeg", type=int, metavar="Q",
                   help="JPEG: quality of the input (default: the model's name, e.g. gray-jpeg-10, else 40)")
    p.add_argument("--seed", type=int, default=0, help="denoising: noise seed, reset for every image (0)")
    p.add_argument("--metrics", nargs="+", choices=METRICS, metavar="M",
                   help=f"of {', '.join(METRICS)} (default: psnr ssim, plus psnrb for JPEG)")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS backbone (alex)")
    p.add_argument("--crop-border", type=int, metavar="N", help="default: scale for SR, 0 otherwise")
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations")
    p.add_argument("--tile", type=_tile, metavar="N|auto", help="restore in N x N input tiles, or 'auto' from free "
                                                               "memory (saves memory; changes results slightly)")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="N")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default: the published numbers)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--weights-dir", type=Path, metavar="DIR", help="where zoo weights are cached")
    p.add_argument("--save-images", type=Path, metavar="DIR", help="write the outputs as PNG")
    p.add_argument("--out", type=Path, metavar="JSON", help="summary, protocol and per-image numbers")
    p.add_argument("--csv", type=Path, metavar="CSV", help="per-image numbers")
    p.add_argument("--per-image", action="store_true", help="print a row per image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def _suffixed(path: Optional[Path], name: str, many: bool) -> Optional[Path]:
    """With several datasets, one file each: results.json -> results_Set5.json."""
    return path.with_name(f"{path.stem}_{name}{path.suffix}") if path and many else path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    common = dict(self_ensemble=args.self_ensemble, tile=args.tile, tile_overlap=args.tile_overlap,
                  precision=args.precision, device=args.device, weights_dir=args.weights_dir)
    try:
        if args.opt:
            if args.gt or args.lq:
                raise EvalError("-opt takes its folders from the options file: drop --gt/--lq")
            results = run_options(load_options(args.opt), model=args.model, save_images=args.save_images,
                                  progress=False if args.no_progress else None, **common)
        else:
            if not args.model or not args.gt:
                raise EvalError("need --model and --gt (or -opt FILE)")
            results = [evaluate(args.model, args.gt, lq=args.lq, scale=args.scale,
                                task=args.task, noise=args.noise, jpeg=args.jpeg, seed=args.seed,
                                metrics=args.metrics, lpips_net=args.lpips_net, crop_border=args.crop_border,
                                save_images=args.save_images, progress=not args.no_progress, **common)]
    except (EvalError, LPIPSWeightsMissing) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    many = len(results) > 1
    for r in results:
        print(r.table(per_image=args.per_image))
        if args.out:
            r.write_json(_suffixed(args.out, r.protocol.dataset, many))
        if args.csv:
            r.write_csv(_suffixed(args.csv, r.protocol.dataset, many))
    failed = sum(len(r.failures) for r in results)
    if failed:
        print(f"{failed} image(s) could not be scored (listed above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
