"""Training and validation data, checked before the first step.

- **Sources**: a folder (searched recursively, symlinks followed: DF2K can be a folder of links),
  a ``meta_info_file`` listing names in it, a BasicSR lmdb (``meta_info.txt`` inside), or
  ``skimage://name,name`` for scikit-image's bundled photos.
- **LR**: a paired folder/lmdb (``PairedImageDataset``), or made from the HR: MATLAB bicubic of the
  whole image, cached in memory and on disk (``SingleHRDataset``, or ``PairedImageDataset`` without
  ``dataroot_lq``); Gaussian noise (``DenoisingDataset``) or JPEG (``JPEGDataset``) of the patch.
- **Randomness** of a sample (crop, flips, noise, quality) is a function of (seed, epoch, index),
  and the sampler's order of (seed, epoch): the stream of batches after a resume is the stream of
  the straight run, whatever the number of workers.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..files import atomic_write
from ..images import IMAGE_EXTENSIONS
from ..protocol.degrade import bicubic_downscale, jpeg_input, noisy_input
from ..protocol.inputs import MAX_FILE_BYTES, ImageError, decode as decode_image, find_lq, read_file
from ..options import SKIMAGE_SCHEME, DatasetOptions

MEMORY_CACHE_BYTES = 256 << 20  # decoded images (and bicubic LR) kept in memory, per process
_EXIF_ORIENTATION = 0x0112


class DataError(UserError):
    """A dataset that cannot be used; ``str()`` is one line naming the file."""


# ---------------------------------------------------------------------------------------------
# Image stores: keys -> encoded images


def skimage_photos(names: Sequence[str]) -> List[Path]:
    """The files of scikit-image's bundled photos (``astronaut``, ``coffee``, ...)."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    found = []
    for name in names:
        hits = sorted(p for p in folder.glob(f"{name}.*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not hits:
            raise DataError(f"{SKIMAGE_SCHEME}{name}: scikit-image has no photo {name!r} in {folder}")
        found.append(hits[0])
    return found


class ImageStore:
    """Encoded images by key: files in a folder (key: relative path), or a BasicSR lmdb (key: lmdb key)."""

    def __init__(self, root: str, backend: str = "disk", meta_info_file: Optional[str] = None, what: str = "data"):
        self.root, self.backend, self.what = root, backend, what
        self._env = None
        self.shapes: Dict[str, Tuple[int, int]] = {}  # lmdb: (w, h) from meta_info.txt
        self.warnings: List[str] = []  # for the training log: data that is used, but not as the user may think
        if root.startswith(SKIMAGE_SCHEME):
            files = skimage_photos([n for n in root[len(SKIMAGE_SCHEME):].split(",") if n])
            self.folder = files[0].parent
            self.keys = [f.name for f in files]
        elif backend == "lmdb":
            self.folder = Path(root)
            self.keys = self._lmdb_keys()
        else:
            self.folder = Path(root)
            if not self.folder.is_dir():
                reason = "is a file, not a folder" if self.folder.exists() else "does not exist"
                raise DataError(f"{what}: folder {root} {reason}")
            self.keys = self._meta_keys(meta_info_file) if meta_info_file else self._scan()
        if not self.keys:
            raise DataError(f"{what}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")

    def _scan(self) -> List[str]:
        keys = []
        for parent, dirs, files in os.walk(self.folder, followlinks=True):
            dirs.sort()
            rel = Path(parent).relative_to(self.folder)
            keys += [str(rel / f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
        return keys

    def _read_list(self, path: Path, what: str) -> List[str]:
        try:
            text = read_file(path).decode("utf-8")
        except ImageError as e:
            raise DataError(f"{self.what}: cannot read {what} {e}") from None
        except UnicodeDecodeError:
            raise DataError(f"{self.what}: {what} {path} is not a UTF-8 text file") from None
        return text.splitlines()

    def _warn_repeats(self, keys: List[str], source: str) -> None:
        """BasicSR trains a key listed twice twice: say so (photo.png and photo.jpg both made lmdb key photo)."""
        seen: Dict[str, int] = {}
        for key in keys:
            seen[key] = seen.get(key, 0) + 1
        repeated = [f"{k} ({n} times)" for k, n in seen.items() if n > 1]
        if repeated:
            more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
            self.warnings.append(f"{self.what}: {source} lists {len(repeated)} key(s) more than once, each trained "
                                 f"on as often: {', '.join(repeated[:3])}{more}")

    def _meta_keys(self, meta_info_file: str) -> List[str]:
        lines = self._read_list(Path(meta_info_file), "meta_info_file")
        keys = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
        self._warn_repeats(keys, f"meta_info_file {meta_info_file}")
        return keys

    def _lmdb_keys(self) -> List[str]:
        meta = self.folder / "meta_info.txt"
        if not (self.folder / "data.mdb").is_file():
            raise DataError(f"{self.what}: {self.root} is not an lmdb (no data.mdb)")
        if not meta.is_file():
            raise DataError(f"{self.what}: {meta} is missing: an lmdb made by datasets/prepare.py (or BasicSR) "
                            f"lists its keys there")
        keys = []
        for line in self._read_list(meta, "lmdb meta_info"):
            if not line.strip():
                continue
            parts = line.split()
            key = parts[0].rsplit(".", 1)[0] if "." in parts[0] else parts[0]
            keys.append(key)
            if len(parts) > 1 and parts[1].startswith("("):
                h, w = (int(v) for v in parts[1].strip("()").split(",")[:2])
                self.shapes[key] = (w, h)
        self._warn_repeats(keys, str(meta))
        return keys

    def label(self, key: str) -> str:
        return str(self.folder / key) if self.backend != "lmdb" else f"{self.root} [{key}]"

    def path(self, key: str) -> Path:
        return self.folder / key

    def read(self, key: str) -> bytes:
        if self.backend == "lmdb":
            if self._env is None:
                import lmdb

                self._env = lmdb.open(str(self.folder), readonly=True, lock=False, readahead=False, meminit=False)
            with self._env.begin(write=False) as txn:
                data = txn.get(key.encode())
            if data is None:
                raise DataError(f"{self.label(key)}: no such key in the lmdb")
            return bytes(data)
        try:
            return read_file(self.path(key))
        except ImageError as e:
            raise DataError(str(e)) from None

    def _check_file(self, key: str) -> None:
        """Only regular files reach the header reader: opening a FIFO would block it forever."""
        try:
            st = self.path(key).stat()
        except OSError:
            return  # Image.open names the problem
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{self.label(key)}: not a regular file (a device, pipe or socket); only files are read")
        if st.st_size > MAX_FILE_BYTES:
            raise DataError(f"{self.label(key)}: {st.st_size:,} bytes is over the limit of {MAX_FILE_BYTES:,}")

    def size(self, key: str) -> Tuple[int, int]:
        """(width, height) from the header only; raises DataError naming the file when unreadable."""
        from PIL import Image, UnidentifiedImageError

        if self.backend != "lmdb":
            self._check_file(key)
        source = io.BytesIO(self.read(key)) if self.backend == "lmdb" else self.path(key)
        try:
            with Image.open(source) as img:
                w, h = img.size
                if img.format == "JPEG" and img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                    w, h = h, w  # OpenCV decodes it upright
        except FileNotFoundError:
            raise DataError(f"{self.label(key)}: no such file") from None
        except UnidentifiedImageError:
            raise DataError(f"{self.label(key)}: not a readable image") from None
        except Exception as e:  # noqa: BLE001 - Pillow raises many kinds on damaged headers
            raise DataError(f"{self.label(key)}: cannot read the image header ({e})") from None
        return w, h

    def __getstate__(self):  # the lmdb handle is opened again in each worker
        return {**self.__dict__, "_env": None}


def decode(data: bytes, mode: str, label: str) -> np.ndarray:
    """uint8 pixels as the official scripts read them (:func:`protocol.inputs.decode`); :class:`DataError`."""
    try:
        return decode_image(data, mode, label)
    except ImageError as e:
        raise DataError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Datasets


class RestorationDataset(Dataset):
    """Pairs of (LQ, GT) for one ``datasets.<key>`` entry.

    Training items are indexed by (epoch, index) and are random patches; ``pair(i)`` is the whole
    image for validation.
    """

    def __init__(self, opts: DatasetOptions, *, scale: int, in_chans: int, seed: int = 0,
                 cache_dir: Optional[Path] = None, key: str = "train"):
        self.opts, self.scale, self.seed = opts, scale, seed
        self.what = f"datasets.{key} ({opts.name})"
        self.kind = opts.kind
        self.mode = "color" if in_chans == 3 else ("y" if self.kind == "jpeg" else "gray")
        backend = opts.io_backend.type
        self.gt = ImageStore(opts.dataroot_gt, backend, opts.meta_info_file, f"{self.what} dataroot_gt")
        self.lq = None
        self.lq_keys: List[str] = []
        if self.kind == "paired" and opts.dataroot_lq is not None:
            self.lq = ImageStore(opts.dataroot_lq, backend, None, f"{self.what} dataroot_lq")
            self._lmdb_lq = set(self.lq.keys) if backend == "lmdb" else set()
            self.lq_keys = [self._lq_key(k) for k in self.gt.keys]
        self.bicubic = self.kind == "bicubic" or (self.kind == "paired" and self.lq is None)
        self.cache_dir = Path(cache_dir) / f"x{scale}_{self.mode}" if cache_dir and self.bicubic else None
        self._memory: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        self._gt_memory: Dict[str, np.ndarray] = {}
        self._memory_bytes = 0
        self.degradation = None
        if self.kind == "realesrgan":
            from .realworld import RealESRGANDegradation, settings_from
            self.degradation = RealESRGANDegradation(scale, settings_from(opts.realesrgan))
            problem = self.degradation.patch_problem(opts.gt_size) if opts.gt_size else ""
            if problem:
                raise DataError(f"{self.what}: {problem}")
        elif self.kind == "bsrgan":
            from .realworld import BSRGANDegradation
            self.degradation = BSRGANDegradation(scale)

    def __len__(self) -> int:
        return len(self.gt.keys)

    @property
    def warnings(self) -> List[str]:
        """What the training log should say about this data (keys listed twice)."""
        return self.gt.warnings + (self.lq.warnings if self.lq is not None else [])

    def probe(self) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        """The (LQ, GT) shapes of a training sample, made from the first image now, writing nothing: the disk
        cache may be in an experiment folder not prepared yet. Raises DataError naming a bad file."""
        cache_dir, self.cache_dir = self.cache_dir, None
        try:
            lq, gt = self[(0, 0)]
        finally:
            self.cache_dir = cache_dir
            self._memory.clear()  # made without the disk cache: the first step makes it again, and caches it
            self._gt_memory.clear()
            self._memory_bytes = 0
        return tuple(lq.shape), tuple(gt.shape)

    def name(self, i: int) -> str:
        return Path(self.gt.keys[i]).stem

    def _lq_key(self, gt_key: str) -> str:
        if self.lq.backend == "lmdb":
            if gt_key not in self._lmdb_lq:
                raise DataError(f"{self.gt.label(gt_key)}: no LR image with key {gt_key} in {self.lq.root}")
            return gt_key
        rel = Path(gt_key)
        template = None if self.opts.filename_tmpl == "{}" else self.opts.filename_tmpl
        try:
            found = find_lq(self.lq.folder / rel.parent, self.gt.path(gt_key), self.scale, template)
        except ImageError as e:
            raise DataError(f"{self.what}: {e}") from None
        return str(rel.parent / found.name)

    # ---- checks --------------------------------------------------------------------------

    def check(self, gt_size: Optional[int] = None) -> int:
        """Read every header: decodable files, LR x scale = HR, big enough for ``gt_size`` patches.

        Returns the number of images; raises DataError naming the first bad file.
        """
        s = self.scale
        for i, key in enumerate(self.gt.keys):
            w, h = self.gt.shapes.get(key) or self.gt.size(key)
            if self.gt.backend == "lmdb":
                self.gt.size(key)  # the value decodes too
            if self.lq is not None:
                lq_key = self.lq_keys[i]
                lw, lh = self.lq.size(lq_key)
                if (w // s, h // s) != (lw, lh):
                    raise DataError(f"{self.what}: {self.lq.label(lq_key)} is {lw}x{lh} but its HR "
                                    f"{self.gt.label(key)} is {w}x{h}: at x{s} the LR should be {w // s}x{h // s}")
            if gt_size is not None and min(w // s * s, h // s * s) < gt_size:
                raise DataError(f"{self.what}: {self.gt.label(key)} is {w}x{h}, smaller than the "
                                f"{gt_size}x{gt_size} training patch (gt_size)")
        return len(self.gt.keys)

    # ---- images --------------------------------------------------------------------------

    def _read_gt(self, i: int) -> np.ndarray:
        """The decoded GT; kept in memory (within MEMORY_CACHE_BYTES) where the LQ is made per patch, so that
        small sets are not decoded again for every patch (a 1000x1000 PNG: ~18 ms)."""
        key = self.gt.keys[i]
        if self.bicubic:  # the pair cache holds these
            return decode(self.gt.read(key), self.mode, self.gt.label(key))
        cached = self._gt_memory.get(key)
        if cached is None:
            cached = decode(self.gt.read(key), self.mode, self.gt.label(key))
            if self._memory_bytes + cached.nbytes <= MEMORY_CACHE_BYTES:
                cached.setflags(write=False)  # shared by every patch: read-only
                self._gt_memory[key] = cached
                self._memory_bytes += cached.nbytes
        return cached

    def _bicubic_pair(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """(GT cropped to a multiple of scale, its MATLAB-bicubic LR), from the caches when there."""
        key = self.gt.keys[i]
        if key in self._memory:
            return self._memory[key]
        gt = self._read_gt(i)
        h, w = gt.shape[0] // self.scale * self.scale, gt.shape[1] // self.scale * self.scale
        lq = None
        cache = self._cache_file(key) if self.cache_dir else None
        if cache is not None and cache.is_file():
            try:
                lq = np.load(cache)
            except (OSError, ValueError):
                lq = None  # a damaged cache file is made again
            if lq is not None and lq.shape[:2] != (h // self.scale, w // self.scale):
                lq = None
        if lq is None:
            gt, lq = bicubic_downscale(gt, self.scale)
            if cache is not None:
                buf = io.BytesIO()
                np.save(buf, lq)
                atomic_write(cache, buf.getvalue())
        pair = (np.ascontiguousarray(gt[:h, :w]), lq)
        if self._memory_bytes + gt.nbytes + lq.nbytes <= MEMORY_CACHE_BYTES:
            self._memory[key] = pair
            self._memory_bytes += gt.nbytes + lq.nbytes
        return pair

    def _cache_file(self, key: str) -> Path:
        if self.gt.backend == "lmdb":
            stamp = f"{Path(self.gt.root).resolve()}:{key}"
        else:
            st = self.gt.path(key).stat()
            stamp = f"{self.gt.path(key).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        digest = hashlib.sha1(stamp.encode()).hexdigest()[:12]
        return self.cache_dir / f"{Path(key).stem}-{digest}.npy"

    def _sr_pair(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        if self.bicubic:
            return self._bicubic_pair(i)
        gt = self._read_gt(i)
        lq_key = self.lq_keys[i]
        lq = decode(self.lq.read(lq_key), self.mode, self.lq.label(lq_key))
        h, w = lq.shape[0] * self.scale, lq.shape[1] * self.scale
        if gt.shape[0] < h or gt.shape[1] < w:
            raise DataError(f"{self.what}: {self.lq.label(lq_key)} x{self.scale} is larger than "
                            f"{self.gt.label(self.gt.keys[i])}")
        return gt[:h, :w], lq

    def pair(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """The whole (GT uint8, LQ) of image ``i`` for validation; LQ is uint8, or float32 when noisy."""
        o = self.opts
        if self.kind in ("paired", "bicubic"):
            return self._sr_pair(i)
        gt = self._read_gt(i)
        if self.kind == "noise":
            return gt, noisy_input(gt, _fixed(o.sigma), o.noise_seed)
        if self.degradation is not None:  # one fixed draw per image, for validation
            gt = gt[:gt.shape[0] // self.scale * self.scale, :gt.shape[1] // self.scale * self.scale]
            lq, target = self.degradation(to_tensor(gt), seed=o.noise_seed * 1_000_003 + i)
            return _to_uint8(target), _to_uint8(lq)
        return gt, jpeg_input(gt, int(_fixed(o.quality)))

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """A training patch pair (LQ, GT) as float32 (C, H, W) tensors in [0, 1] (noisy LQ unclipped)."""
        epoch, index = item if isinstance(item, tuple) else (0, item)
        rng = np.random.default_rng([self.seed, epoch, index])
        i = index % len(self)
        o, s = self.opts, self.scale
        size = o.gt_size
        if self.kind in ("paired", "bicubic"):
            gt, lq = self._sr_pair(i)
            p = size // s
            top = int(rng.integers(0, lq.shape[0] - p + 1))
            left = int(rng.integers(0, lq.shape[1] - p + 1))
            lq = lq[top:top + p, left:left + p]
            gt = gt[top * s:(top + p) * s, left * s:(left + p) * s]
            lq, gt = augment((lq, gt), rng, o.hflip, o.use_rot)
        else:
            gt = self._read_gt(i)
            top = int(rng.integers(0, gt.shape[0] - size + 1))
            left = int(rng.integers(0, gt.shape[1] - size + 1))
            (gt,) = augment((gt[top:top + size, left:left + size],), rng, o.hflip, o.use_rot)
            if self.degradation is not None:  # the patch's own seed: the same patch on a resumed run
                return self.degradation(to_tensor(gt), seed=int(rng.integers(2 ** 63)))
            if self.kind == "noise":
                lo, hi = _range(o.sigma)
                sigma = lo if lo == hi else float(rng.uniform(lo, hi))
                gray = bool(o.gray_noise_prob) and rng.random() < o.gray_noise_prob  # no draw when unset
                lq = noisy_input(gt, sigma, rng=rng, gray=gray)
            else:
                lo, hi = _range(o.quality)
                lq = jpeg_input(gt, int(lo if lo == hi else rng.integers(lo, hi + 1)))
        return to_tensor(lq), to_tensor(gt)


def _range(level) -> Tuple[float, float]:
    return tuple(level) if isinstance(level, tuple) else (level, level)


def _fixed(level) -> float:
    return _range(level)[0]


def augment(images: Tuple[np.ndarray, ...], rng: np.random.Generator, hflip: bool, rot: bool):
    """BasicSR's augment: the same horizontal flip, vertical flip and transpose on every image."""
    h = hflip and rng.random() < 0.5
    v = rot and rng.random() < 0.5
    t = rot and rng.random() < 0.5
    out = []
    for img in images:
        if h:
            img = img[:, ::-1]
        if v:
            img = img[::-1]
        if t:
            img = img.swapaxes(0, 1)
        out.append(img)
    return tuple(out)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> HxWxC (HxW for one channel) uint8, rounded."""
    a = (t.clamp(0, 1) * 255).round().byte().numpy().transpose(1, 2, 0)
    return a[:, :, 0] if a.shape[2] == 1 else np.ascontiguousarray(a)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (/255) or float HxW[xC] -> float32 (C, H, W)."""
    a = img.astype(np.float32) / np.float32(255.0) if img.dtype == np.uint8 else img.astype(np.float32, copy=False)
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
