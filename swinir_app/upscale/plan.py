"""Planning a batch before any model work: the inputs (each once), their outputs (no two alike, none
an input), their kinds (still, frames, video slices), this rank's share, and the output folders'
checks. What it finds wrong is said here, one line each; what stops the run is returned."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import frames as animations
from .. import video
from ..files import remove_stale_parts
from ..images import IMAGE_EXTENSIONS, OUTPUT_FORMATS, WRITABLE
from .summary import Summary


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: str = "image"  # "image", "frames" (an animated image or multi-page TIFF) or "video"
    segment: Optional[Tuple[int, int]] = None  # (k, n): the k-th of n time slices of a video


class Plan:
    """What one rank of a run will do, decided before any model is loaded. Every rank plans the same
    batch and says nothing but its own share's lines; rank 0 says the rest. Use in order:
    :meth:`destinations`, :meth:`encoders`, :meth:`share`, then (with the model) :meth:`check_outputs`.

    ``todo``: this rank's jobs to restore; ``summary``: what planning already counted (inputs that
    don't exist, refused and skipped jobs); ``folders``: every output folder of the batch."""

    def __init__(self, args, rank: int, world: int):
        self.args, self.rank, self.world = args, rank, world
        self.main_rank = rank == 0
        self.jobs: List[Job] = []
        self.todo: List[Job] = []
        self.folders: List[Path] = []
        self.summary = Summary()

    def _say(self, kind: str, lines: List[str]) -> None:
        for line in lines if self.main_rank else []:
            print(f"{kind}: {line}", file=sys.stderr)

    def destinations(self) -> Optional[str]:
        """Collect the inputs (each once) and their outputs; returns the last collision, two inputs
        written to one file (the others said here), which stops the run."""
        args = self.args
        jobs, missing, notes = collect_inputs(args.inputs, Path(args.output), args.ext, args.suffix, args.recursive)
        jobs, twice = _once_each(jobs)
        notes += [f"{src}: given more than once; restored once" for src in twice]
        clashes = collisions(jobs, args.ext)
        if clashes:
            self._say("error", clashes[:-1])
            return clashes[-1]
        self.summary.failed = len(missing) if self.main_rank else 0
        self._say("error", missing)
        self._say("note", notes)
        self.jobs = jobs
        return None

    def encoders(self) -> Optional[str]:
        """The video settings checked against every video's encoder (a usage error, returned); sets
        ``args.crf`` to its default where not given, with a note where the encoder doesn't use it."""
        args = self.args
        if args.segments < 1:
            return "--segments must be at least 1"
        codecs = sorted({args.video_codec or video.default_codec(j.dst) for j in self.jobs
                         if j.src.suffix.lower() in video.VIDEO_EXTENSIONS})
        given_crf, args.crf = args.crf is not None, video.DEFAULT_CRF if args.crf is None else args.crf
        for problem in filter(None, (video.encoder_problem(c, args.crf, args.preset) for c in codecs)):
            return problem
        unused = [c for c in codecs if given_crf and self.main_rank and video.encoder_name(c) not in video.CRF_RANGE]
        for codec in unused:
            print(f"note: --crf is not used by {codec} (only by {', '.join(video.CRF_RANGE)}); "
                  f"{video.quality_without_crf(codec)}", file=sys.stderr)
        return None

    def share(self) -> None:
        """Each job's kind, this rank's share of them, and which of it is to do (``todo``): not a refused
        animation, not an output that is an input, not an existing output (skipped, unless
        --overwrite). Then what killed runs left in every output folder is removed (by rank 0)."""
        args = self.args
        inputs = {_identity(job.src) for job in self.jobs} - {None}
        jobs, refused = plan_kinds(self.jobs, args.segments)
        self.folders = sorted({job.dst.parent for job in jobs})
        existing = 0
        for job in shard(jobs, self.rank, self.world):
            first = job.segment is None or job.segment[0] == 0  # a video cut in slices: one line, one count
            if job in refused:
                self.summary.failed += 1
                print(f"error: {job.src}: {refused[job]}", file=sys.stderr)
            elif job.dst.exists() and _identity(job.dst) in inputs:
                if first:
                    self.summary.failed += 1
                    print(f"error: {job.src}: its output {job.dst} is an input (the same file); not written",
                          file=sys.stderr)
            elif job.dst.exists() and not args.overwrite:
                if first:
                    self.summary.skipped += 1
                    existing += 1
            else:
                self.todo.append(job)
        if existing and not args.skip_existing:
            one = existing == 1
            print(f"note: {existing} output{'' if one else 's'} already exist{'s' if one else ''} and "
                  f"{'was' if one else 'were'} skipped; --overwrite replaces {'it' if one else 'them'}",
                  file=sys.stderr)
        # What killed runs left in every output folder, work left there or not (a --skip-existing rerun):
        # .part files and time slices, by age (a live run keeps its own fresh).
        for folder in self.folders if self.main_rank else []:
            for left in remove_stale_parts(folder) + video.remove_stale_segments(folder):
                print(f"note: removed {left}, left by an interrupted run", file=sys.stderr)

    def check_outputs(self, restorer) -> Optional[str]:
        """With the model loaded and work to do: notes on the tile settings (rank 0), and why the
        outputs cannot be written, if they cannot."""
        if self.main_rank:
            self._say("note", tiling_notes(restorer, self.todo[0], self.args))
        return check_output_folders(self.todo, self.args.outscale or restorer.scale)


def collect_inputs(inputs: List[str], out_dir: Path, ext: str, suffix: str, recursive: bool
                   ) -> Tuple[List[Job], List[str], List[str]]:
    """Jobs in a stable order; one-line errors (inputs that don't exist) and notes (what a folder scan
    left out: links to nothing, and sub-folders without --recursive)."""
    jobs: List[Job] = []
    errors: List[str] = []
    notes: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            entries = sorted(path.glob(pattern))
            for f in entries:
                if f.is_symlink() and not f.exists():
                    notes.append(f"{f}: a link to nothing; skipped")
                elif f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS + video.VIDEO_EXTENSIONS:
                    jobs.append(Job(f, _destination(f, out_dir / f.relative_to(path).parent, ext, suffix)))
            folders = [f for f in entries if f.is_dir()] if not recursive else []
            if folders:
                notes.append(f"{path}: {len(folders)} sub-folder{'s' if len(folders) > 1 else ''} not searched "
                             f"({', '.join(f.name for f in folders[:3])}{', ...' if len(folders) > 3 else ''}); "
                             f"--recursive descends into them")
        elif path.exists() or path.is_symlink():
            jobs.append(Job(path, _destination(path, out_dir, ext, suffix)))
        else:
            errors.append(f"{item}: no such file or folder")
    return jobs, errors, notes


def collisions(jobs: List[Job], ext: str) -> List[str]:
    """One line per output that two or more inputs would be written to, compared without case (as a
    file system on macOS or Windows compares), naming the inputs and what keeps them apart."""
    by_dst: Dict[str, List[Job]] = {}
    for job in jobs:
        by_dst.setdefault(str(job.dst).lower(), []).append(job)
    lines = []
    for group in by_dst.values():
        if len(group) < 2:
            continue
        kinds = {j.src.suffix.lower() for j in group}
        advice = ("--ext auto keeps their extensions" if ext != "auto" and len(kinds) == len(group)
                  else "rename one, or write them to separate output folders")
        lines.append(f"{' and '.join(str(j.src) for j in group)} would be written to the same file, {group[0].dst}; "
                     f"{advice}")
    return lines


def _once_each(jobs: List[Job]) -> Tuple[List[Job], List[Path]]:
    """The jobs with an input named twice (the same file, by any path) kept once, and those inputs."""
    seen, kept, twice = set(), [], []
    for job in jobs:
        key = _identity(job.src) or str(job.src)
        if key in seen:
            twice.append(job.src)
            continue
        seen.add(key)
        kept.append(job)
    return kept, twice


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _destination(src: Path, folder: Path, ext: str, suffix: str) -> Path:
    if src.suffix.lower() in video.VIDEO_EXTENSIONS:  # videos keep their container; --ext is for images
        out_ext = src.suffix.lower()
    elif ext == "auto":
        out_ext = src.suffix.lower() if src.suffix.lower() in WRITABLE else ".png"
    else:
        out_ext = OUTPUT_FORMATS[ext]
    return folder / f"{src.stem}{suffix}{out_ext}"


def plan_kinds(jobs: List[Job], segments: int) -> Tuple[List[Job], Dict[Job, str]]:
    """Each job with its kind (a still image, frames, or a video cut into ``segments`` time slices),
    and the jobs refused before any work, with why: an animation asked for in a still format."""
    out: List[Job] = []
    refused: Dict[Job, str] = {}
    for job in jobs:
        if job.src.suffix.lower() in video.VIDEO_EXTENSIONS:
            n = segments
            out.extend(replace(job, kind="video", segment=(k, n) if n > 1 else None) for k in range(n))
            continue
        count, fmt = animations.frame_info(job.src)
        if count <= 1:
            out.append(job)
            continue
        job = replace(job, kind="frames")
        problem = animations.output_problem(fmt, count, job.dst.suffix)
        if problem:
            refused[job] = problem
        out.append(job)
    return out, refused


def shard(jobs: List[Job], rank: int, world: int) -> List[Job]:
    """This rank's share under torchrun (RANK/WORLD_SIZE cover all nodes)."""
    return jobs[rank::world]


def tiling_notes(restorer, job: "Job", args) -> List[str]:
    """The engine's notes on its tile plan for the first input (an image, or a video's frames): an overlap
    cut to half the tile, and tiles so small that they compute far more pixels than the image has."""
    import stat

    from PIL import Image

    if args.tile in (None, "auto"):
        return []
    src = job.src
    try:
        if not stat.S_ISREG(os.stat(src).st_mode):
            return []
        if job.kind == "video":
            info = video.probe(src)
            w, h = info.width, info.height
        else:
            with Image.open(src) as img:
                w, h = img.size
    except Exception:  # noqa: BLE001 - the reader says what is wrong with it later
        return []
    return [note.flag() for note in restorer.plan(h, w, src.name).notes]


def check_output_folders(jobs: List[Job], scale: float) -> Optional[str]:
    """Why the outputs cannot be written (a read-only or full folder), before any image is computed.

    Each output folder is created and a probe file written in it; and it must have room for at
    least the first image's output, uncompressed.
    """
    import shutil
    import tempfile

    for folder in sorted({job.dst.parent for job in jobs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.", suffix=".part") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            return f"cannot write to the output folder {folder}: {e.strerror or e}"
    if jobs:
        need = _output_bytes(jobs[0].src, scale)
        free = shutil.disk_usage(jobs[0].dst.parent).free
        if need and free < need:
            return (f"the output folder {jobs[0].dst.parent} has {free / 2 ** 20:,.0f} MB free; the first result "
                    f"alone needs about {need / 2 ** 20:,.0f} MB")
    return None


def _output_bytes(src: Path, scale: float) -> int:
    """The uncompressed size of ``src``'s result (0 if its header cannot be read here)."""
    import stat

    try:
        from PIL import Image
        if not stat.S_ISREG(os.stat(src).st_mode):  # never open a pipe or device here
            return 0
        with Image.open(src) as img:
            w, h = img.size
            return int(w * h * scale * scale * len(img.getbands()))
    except Exception:  # noqa: BLE001 - the reader says what is wrong with it later
        return 0
