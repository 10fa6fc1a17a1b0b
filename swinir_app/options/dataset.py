"""``datasets.<key>`` of an options file: where the images are and how the LQ input is made (BasicSR's dataset
types, Real-ESRGAN's and BSRGAN's degradations), and its ``io_backend``."""
from __future__ import annotations

from typing import Annotated, Optional, Tuple, Union

from pydantic import Field

from .values import Bool, Float, Int, Level, Pair, Section, Str, _one_of

__all__ = ["DATASET_TYPES", "REALESRGAN_KEYS", "SKIMAGE_SCHEME", "DatasetOptions", "IOBackendOptions"]

SKIMAGE_SCHEME = "skimage://"  # a dataroot naming scikit-image's bundled photos: skimage://astronaut,coffee
DATASET_TYPES = {
    "PairedImageDataset": "paired",  # HR + LR folders/lmdb; without dataroot_lq the LR is MATLAB bicubic
    "SingleHRDataset": "bicubic",  # HR only, LR made with MATLAB bicubic (and cached)
    "DenoisingDataset": "noise",  # HR only, Gaussian noise of sigma (fixed or a [min, max] range)
    "JPEGDataset": "jpeg",  # HR only, OpenCV JPEG at quality (fixed or a [min, max] range)
    "RealESRGANDataset": "realesrgan",  # HR only, Real-ESRGAN's second-order degradation per patch
    "BSRGANDataset": "bsrgan",  # HR only, BSRGAN's random-order degradation per patch (KAIR's blindsr)
}
# Real-ESRGAN's degradation keys (train_realesrgan_x4plus.yml), all in the dataset's section here; unset
# ones take Real-ESRGAN's values (swinir_app.train.realworld.RealESRGANSettings).
REALESRGAN_KEYS = ("blur_kernel_size", "kernel_list", "kernel_prob", "sinc_prob", "blur_sigma", "betag_range",
                   "betap_range", "resize_prob", "resize_range", "gaussian_noise_prob", "noise_range",
                   "poisson_scale_range", "gray_noise_prob", "jpeg_range", "second_blur_prob", "blur_kernel_size2",
                   "kernel_list2", "kernel_prob2", "sinc_prob2", "blur_sigma2", "betag_range2", "betap_range2",
                   "resize_prob2", "resize_range2", "gaussian_noise_prob2", "noise_range2", "poisson_scale_range2",
                   "gray_noise_prob2", "jpeg_range2", "final_sinc_prob", "gt_usm")


class IOBackendOptions(Section):
    """``datasets.<key>.io_backend``: how ``dataroot_gt`` and ``dataroot_lq`` are stored (BasicSR's key)."""

    type: Annotated[str, _one_of("disk", "lmdb")] = Field("disk", description=(
        "`disk`: image files in folders; `lmdb`: a BasicSR lmdb (`data.mdb` and `meta_info.txt` in the dataroot). "
        "Evaluation takes `disk` only."))


_RE = "`RealESRGANDataset`, first degradation: "  # Real-ESRGAN's keys: unset = its value (in brackets)
_RE2 = "`RealESRGANDataset`: the second degradation's "


class DatasetOptions(Section):
    """``datasets.<key>``: where the images are and how LQ is made (training, validation, testing)."""

    name: Str = Field("", description="The set's name in logs, TensorBoard and results; empty: its key (`val_1`).")
    type: Annotated[str, _one_of(*DATASET_TYPES)] = Field("PairedImageDataset", description=(
        "How the LQ is made: `PairedImageDataset` (an LR folder, or MATLAB bicubic without `dataroot_lq`), "
        "`SingleHRDataset` (bicubic, cached), `DenoisingDataset` (noise, `sigma`), `JPEGDataset` (`quality`), "
        "`RealESRGANDataset` or `BSRGANDataset` (real-world degradations per patch). Evaluation: paired only."))
    dataroot_gt: Optional[Str] = Field(None, description=(
        "Required. The HR (ground-truth) images: a folder (searched recursively, symlinks followed), an lmdb "
        "(`io_backend: {type: lmdb}`) or `skimage://astronaut,coffee`. Relative to the current directory."))
    dataroot_lq: Optional[Str] = Field(None, description=(
        "`PairedImageDataset`: the LR images at 1/scale, matched to the HR by `filename_tmpl` (required with "
        "lmdb); unset: MATLAB-bicubic LR made from the HR."))
    meta_info_file: Optional[Str] = Field(None, description=(
        "Folders: a text file listing the HR images to use (first word of a line, relative to `dataroot_gt`; "
        "`#` lines skipped); unset: every image. An lmdb has its own `meta_info.txt`."))
    filename_tmpl: Str = Field("{}", description=(
        "The LR file stem of HR stem `s` is `filename_tmpl.format(s)` (BasicSR's), any image extension; the "
        "default `{}` tries `<s>x<scale>`, then `<s>`."))
    io_backend: IOBackendOptions = Field(IOBackendOptions(), description="`{type: disk}` or `{type: lmdb}`.")
    gt_size: Optional[Int] = Field(None, description=(
        "Training: the HR patch side in pixels, a multiple of `scale` (LR patch: gt_size / scale). Required for "
        "`datasets.train`; validation uses whole images."))
    use_hflip: Bool = Field(True, description="Training: random horizontal flip of the patch (p 0.5), BasicSR's.")
    use_flip: Optional[Bool] = Field(None, description="The older BasicSR name of `use_hflip`; wins when set.")
    use_rot: Bool = Field(True, description="Training: random vertical flip and transpose (p 0.5 each), BasicSR's.")
    sigma: Optional[Level] = Field(None, description=(
        "`DenoisingDataset` (required): Gaussian noise std in 0-255 levels: `15`, or `[0, 50]` drawn per "
        "training patch (validation: one number)."))
    quality: Optional[Union[Int, Tuple[Int, Int]]] = Field(None, description=(
        "`JPEGDataset` (required): OpenCV JPEG quality 1-100: `40`, or `[10, 40]` drawn per training patch "
        "(validation: one number)."))
    noise_seed: Int = Field(0, description=(
        "Validation: the seed of the noise (reseeded per image, as the official test script) and of the "
        "Real-ESRGAN/BSRGAN degradations, so every validation sees the same LQ."))
    lq_cache: Optional[Str] = Field(None, description=(
        "`datasets.train`: the folder where MATLAB-bicubic LR images are cached (default: "
        "`<experiments_root>/cache`); validation sets cache in memory only."))
    blur_kernel_size: Optional[Int] = Field(None, description=_RE + "side the blur kernels (7-21) are padded "
                                            "to, odd, >= 7 [21].")
    kernel_list: Optional[Tuple[Str, ...]] = Field(None, description=_RE + "blur kernel kinds: `iso`, `aniso`, "
                                                   "`generalized_iso`, `generalized_aniso`, `plateau_iso`, "
                                                   "`plateau_aniso` [all six].")
    kernel_prob: Optional[Tuple[Float, ...]] = Field(None, description=_RE + "probability of each kind of "
                                                     "`kernel_list`, in order [0.45, 0.25, 0.12, 0.03, 0.12, 0.03].")
    sinc_prob: Optional[Float] = Field(None, description=_RE + "probability of a sinc (ringing) kernel [0.1].")
    blur_sigma: Optional[Pair] = Field(None, description=_RE + "blur sigma range, pixels, min < max [0.2, 3].")
    betag_range: Optional[Pair] = Field(None, description=_RE + "generalized-Gaussian beta range [0.5, 4].")
    betap_range: Optional[Pair] = Field(None, description=_RE + "plateau kernel beta range [1, 2].")
    resize_prob: Optional[Tuple[Float, Float, Float]] = Field(None, description=(
        _RE + "probabilities of resizing up, down, or not [0.2, 0.7, 0.1]."))
    resize_range: Optional[Pair] = Field(None, description=_RE + "resize factor range [0.15, 1.5].")
    gaussian_noise_prob: Optional[Float] = Field(None, description=(
        _RE + "probability of Gaussian noise (else Poisson) [0.5]."))
    noise_range: Optional[Pair] = Field(None, description=_RE + "Gaussian noise sigma range, 0-255 levels [1, 30].")
    poisson_scale_range: Optional[Pair] = Field(None, description=_RE + "Poisson noise scale range [0.05, 3].")
    gray_noise_prob: Optional[Float] = Field(None, description=(
        _RE + "probability that the noise is gray (one plane for all channels) [0.4]. Also `DenoisingDataset`: "
        "the share of training patches given gray noise (unset: none)."))
    jpeg_range: Optional[Pair] = Field(None, description=_RE + "JPEG quality range, 1-99 [30, 95].")
    second_blur_prob: Optional[Float] = Field(None, description=(
        "`RealESRGANDataset`: probability that the second degradation blurs [0.8]."))
    blur_kernel_size2: Optional[Int] = Field(None, description=_RE2 + "`blur_kernel_size` [21].")
    kernel_list2: Optional[Tuple[Str, ...]] = Field(None, description=_RE2 + "`kernel_list` [all six].")
    kernel_prob2: Optional[Tuple[Float, ...]] = Field(None, description=_RE2 + "`kernel_prob` [as the first].")
    sinc_prob2: Optional[Float] = Field(None, description=_RE2 + "`sinc_prob` [0.1].")
    blur_sigma2: Optional[Pair] = Field(None, description=_RE2 + "`blur_sigma` [0.2, 1.5].")
    betag_range2: Optional[Pair] = Field(None, description=_RE2 + "`betag_range` [0.5, 4].")
    betap_range2: Optional[Pair] = Field(None, description=_RE2 + "`betap_range` [1, 2].")
    resize_prob2: Optional[Tuple[Float, Float, Float]] = Field(None, description=(
        _RE2 + "`resize_prob` [0.3, 0.4, 0.3]."))
    resize_range2: Optional[Pair] = Field(None, description=_RE2 + "`resize_range` [0.3, 1.2].")
    gaussian_noise_prob2: Optional[Float] = Field(None, description=_RE2 + "`gaussian_noise_prob` [0.5].")
    noise_range2: Optional[Pair] = Field(None, description=_RE2 + "`noise_range` [1, 25].")
    poisson_scale_range2: Optional[Pair] = Field(None, description=_RE2 + "`poisson_scale_range` [0.05, 2.5].")
    gray_noise_prob2: Optional[Float] = Field(None, description=_RE2 + "`gray_noise_prob` [0.4].")
    jpeg_range2: Optional[Pair] = Field(None, description=_RE2 + "`jpeg_range` [30, 95].")
    final_sinc_prob: Optional[Float] = Field(None, description=(
        "`RealESRGANDataset`: probability of the final sinc filter, with the resize back to LR size [0.8]."))
    gt_usm: Optional[Bool] = Field(None, description=(
        "`RealESRGANDataset`: the target, and the degradation's start, is the USM-sharpened GT [true]."))
    use_shuffle: Bool = Field(True, description="Training: shuffle the images every epoch (else file order).")
    batch_size_per_gpu: Int = Field(1, description="Training: patches per batch per process (>= 1).")
    num_worker_per_gpu: Int = Field(0, description="Training: DataLoader worker processes per process (0: none).")
    dataset_enlarge_ratio: Int = Field(1, description="Training: each epoch goes through the images this often.")
    pin_memory: Bool = Field(False, description="Training: page-locked batches, when training on CUDA.")
    persistent_workers: Bool = Field(False, description="Accepted for BasicSR files; not used.")
    prefetch_mode: Optional[Str] = Field(None, description=(
        "Accepted for BasicSR files (null, `cpu` or `cuda`); loading is the DataLoader's workers."))
    num_prefetch_queue: Int = Field(1, description="Training: batches prefetched per worker (at least 2).")
    phase: Optional[Str] = Field(None, description="Set by BasicSR itself; accepted, not used.")
    scale: Optional[Int] = Field(None, description="Set by BasicSR itself; accepted, not used (the top-level "
                                 "`scale` counts).")

    @property
    def kind(self) -> str:
        return DATASET_TYPES[self.type]

    @property
    def realesrgan(self) -> dict:
        """The Real-ESRGAN degradation keys that are set."""
        return {k: getattr(self, k) for k in REALESRGAN_KEYS if getattr(self, k) is not None}

    @property
    def hflip(self) -> bool:
        return self.use_hflip if self.use_flip is None else self.use_flip
