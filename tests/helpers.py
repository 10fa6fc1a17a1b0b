"""Helpers shared by several test files: training pairs and options, animated images and videos, LPIPS weights."""
import importlib.util
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torchvision
import yaml
from PIL import Image

from conftest import REPO as ROOT, photo
from swinir_app.protocol.degrade import bicubic_downscale
from swinir_app.protocol.metrics import lpips_backbone_file

# ---- training data ---------------------------------------------------------------------------------

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def prepare_module():
    """datasets/prepare.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("prepare", ROOT / "datasets" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]) if rgb.ndim == 3 else rgb)
    return path


def box_downscale(img: np.ndarray, s: int) -> np.ndarray:
    """The rounded mean of every s x s block: an LR whose alignment with the HR is checkable exactly."""
    h, w = img.shape[0] // s, img.shape[1] // s
    blocks = img[:h * s, :w * s].astype(np.float64).reshape(h, s, w, s, -1).mean(axis=(1, 3))
    return np.round(blocks).astype(np.uint8).reshape((h, w) + img.shape[2:])


def write_pairs(root: Path, scale: int = 2, size=(72, 90), lr: str = "bicubic", names=PHOTOS) -> tuple:
    """``root/hr/<name>.png`` real photo crops and ``root/lr/<name>x<scale>.png``; returns (hr, lr)."""
    hr_dir, lr_dir = root / "hr", root / "lr"
    for i, name in enumerate(names):
        img = photo(name)[40 + 7 * i:40 + 7 * i + size[0], 60:60 + size[1] + 2 * i]
        write_rgb(hr_dir / f"{name}.png", img)
        low = bicubic_downscale(img, scale)[1] if lr == "bicubic" else box_downscale(img, scale)
        write_rgb(lr_dir / f"{name}x{scale}.png", low)
    return hr_dir, lr_dir


def tiny_options(root: Path, hr: Path, lr: Path = None, *, scale: int = 2, total_iter: int = 4, name: str = "tiny",
                 **sections) -> Path:
    """A tiny x``scale`` SR training options file in ``root`` (experiments in ``root/experiments``).

    ``sections`` update the top-level sections: ``train={"ema_decay": 0.5}`` merges into train.
    """
    opts = {
        "name": name, "model_type": "SwinIRModel", "scale": scale, "num_gpu": 0, "manual_seed": 7,
        "datasets": {
            "train": {"name": "photos", "type": "PairedImageDataset", "dataroot_gt": str(hr),
                      **({"dataroot_lq": str(lr), "filename_tmpl": f"{{}}x{scale}"} if lr else {}),
                      "io_backend": {"type": "disk"}, "gt_size": 16 * scale, "use_hflip": True, "use_rot": True,
                      "batch_size_per_gpu": 2, "num_worker_per_gpu": 0, "dataset_enlarge_ratio": 2},
            "val": {"name": "val_photos", "type": "PairedImageDataset", "dataroot_gt": str(hr),
                    **({"dataroot_lq": str(lr), "filename_tmpl": f"{{}}x{scale}"} if lr else {})},
        },
        "network_g": {"type": "SwinIR", "upscale": scale, "in_chans": 3, "img_size": 16, "window_size": 8,
                      "img_range": 1.0, "depths": [2], "embed_dim": 16, "num_heads": [2], "mlp_ratio": 2,
                      "upsampler": "pixelshuffledirect", "resi_connection": "1conv", "drop_path_rate": 0.1},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None,
                 "experiments_root": str(root / "experiments" / name)},
        "train": {"ema_decay": 0.9, "optim_g": {"type": "Adam", "lr": 2e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
                  "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
                  "total_iter": total_iter, "warmup_iter": -1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
        "val": {"val_freq": 2, "save_img": False,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": scale, "test_y_channel": True},
                            "ssim": {"type": "calculate_ssim", "crop_border": scale, "test_y_channel": True}}},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(opts.get(key), dict):
            opts[key].update(value)
        else:
            opts[key] = value
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(opts, sort_keys=False))
    return path


# ---- animated images -------------------------------------------------------------------------------

def moving_frames(n: int = 3, alpha: bool = True) -> list:
    """n RGBA frames of a real photo, moving, each with a transparent corner that grows."""
    base = np.ascontiguousarray(photo("chelsea")[60:92, 120:160])  # 32 x 40
    frames = []
    for k in range(n):
        rgb = np.roll(base, 3 * k, axis=1)
        a = np.full(rgb.shape[:2], 255, np.uint8)
        if alpha:
            a[:4 + 2 * k, :6 + 2 * k] = 0  # new transparent pixels in every frame
        frames.append(np.dstack([rgb, a]))
    return frames


def write_animated(path: Path, frames: list, durations=(80, 160, 240)) -> None:
    images = [Image.fromarray(f) for f in frames]
    kwargs = dict(save_all=True, append_images=images[1:], duration=list(durations), loop=3)
    if path.suffix == ".png":
        kwargs.update(disposal=[0, 1, 0], blend=0)
    elif path.suffix == ".gif":
        kwargs.update(disposal=2)
    else:
        kwargs.update(lossless=True)
    images[0].save(path, **kwargs)


# ---- video ------------------------------------------------------------------------------------------

FPS, FRAMES, SAMPLE_RATE = 12, 12, 48000


def write_video(path: Path, n: int = FRAMES, rotation: int = 0, audio: bool = True, bits: int = 8) -> list:
    """An n-frame 64x48 clip of a moving photo (H.264) with a 440 Hz sine track (AAC); its frames.
    ``bits=10``: 10-bit H.264 from 16-bit frames (the photo plus a fine ramp of sub-8-bit levels)."""
    base = photo("astronaut")[80:128, 180:244]
    if bits > 8:
        base = base.astype(np.uint16) * 250 + np.linspace(0, 1500, 64, dtype=np.uint16)[None, :, None]
    frames = [np.ascontiguousarray(np.roll(base, 2 * k, axis=1)) for k in range(n)]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p" if bits == 8 else "yuv420p10le"
        if rotation:
            vs.set_display_rotation(rotation)
        if audio:
            a = c.add_stream("aac", rate=SAMPLE_RATE)
            a.layout = "mono"
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24" if bits == 8 else "rgb48le")):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if audio:
            t = np.arange(SAMPLE_RATE * n // FPS) / SAMPLE_RATE
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, wave.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format="fltp",
                                                layout="mono")
                af.sample_rate = SAMPLE_RATE
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return frames


def describe(path: Path) -> dict:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        decoded = list(c.decode(vs))
        audio = c.streams.audio[0] if c.streams.audio else None
        return dict(frames=[f.to_ndarray(format="rgb24") for f in decoded], pts=[f.pts for f in decoded],
                    time_base=vs.time_base, rate=vs.average_rate, rotation=decoded[0].rotation,
                    size=(vs.codec_context.width, vs.codec_context.height),
                    audio=None if audio is None else (audio.codec_context.name,
                                                      float(audio.duration * audio.time_base)))


# ---- LPIPS ------------------------------------------------------------------------------------------

def make_lpips_home(root: Path, monkeypatch) -> Path:
    """TORCH_HOME with a seeded random AlexNet where torchvision looks for the pretrained one."""
    monkeypatch.setenv("TORCH_HOME", str(root))
    path, _ = lpips_backbone_file("alex")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def torchrun_resume(opt: Path, total_iter: int = 8) -> str:
    """``opt`` resumed to ``total_iter`` under torchrun with 2 processes on the CPU (gloo); returns the log
    of that run, after checking that it ran both processes to the end."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "swinir_app.train", "-opt", str(opt), "--launcher", "pytorch", "--auto_resume",
                           "--force_yml", f"train:total_iter={total_iter}"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr
