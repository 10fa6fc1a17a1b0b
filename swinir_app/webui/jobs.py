"""Jobs and the device slot: each request's own cancel token and budgets, and a fair queue. No gradio here.

A :class:`Job` is one request (a page Run, an API call). Cancel sets that job's token only, so the
session's next Run is not held up by the cancelled one. The work holds the :class:`FairSlot` (the
device) for one unit at a time (an image, a video frame); between units it goes to the waiting job
of the owner (browser session, API client) served longest ago, so one huge batch cannot starve the others.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Set, Tuple

from ..errors import UserError

MAX_OWNERS = 10_000  # owners remembered for the round-robin; forgotten ones start afresh


class WebError(UserError):
    """A request that cannot be done; ``str()`` is one line for the page."""


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def readable(err: BaseException, limit: int = 200) -> str:
    """One line a user can act on, for an error that is not one of ours (a kernel's, the allocator's):
    what happened and what to change, with the original text cut to ``limit`` characters."""
    text = one_line(err)
    low = text.lower()
    if isinstance(err, MemoryError) or "out of memory" in low or "can't allocate" in low or "cannot allocate" in low:
        return "out of memory: choose a smaller tile size under Advanced (or auto), or a smaller image"
    if any(k in low for k in ("primitive descriptor", "mkldnn", "onednn", "not implemented for", "no kernel")):
        head = text if len(text) <= limit else text[:limit - 1] + "…"
        return f"this device cannot run the model with these settings; choose fp32 under Advanced ({head})"
    head = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"the model failed on this image ({type(err).__name__}: {head}); the server log has the details"


class Cancelled(Exception):
    """The user pressed Cancel; raised from the tile callback so that the work really stops."""


class OverBudget(WebError):
    """The request used up its pixel budget or its device time: the rest of it is not done."""


class Job:
    """One request: its cancel token, the device time it has used and the pixels it has read and written.

    It has :class:`threading.Event`'s ``set`` and ``is_set``, so code that takes a cancel event takes a job.
    """

    def __init__(self, owner: str = "-", max_seconds: Optional[float] = None, max_pixels: Optional[int] = None):
        self.owner, self.max_seconds, self.max_pixels = owner, max_seconds, max_pixels
        self._cancel = threading.Event()
        self.held = 0.0  # device seconds used, units done
        self.since: Optional[float] = None  # when it took the slot for the current unit
        self.pixels = 0

    def set(self) -> None:
        self._cancel.set()

    def is_set(self) -> bool:
        return self._cancel.is_set()

    def device_seconds(self) -> float:
        since = self.since
        return self.held + (time.monotonic() - since if since is not None else 0.0)

    def check(self) -> None:
        """Raise :class:`Cancelled` once cancelled, :class:`OverBudget` once past its device time."""
        if self._cancel.is_set():
            raise Cancelled("cancelled")
        if self.max_seconds is not None and self.device_seconds() > self.max_seconds:
            raise OverBudget(f"stopped after {self.max_seconds:g} s of work, this server's limit for one request; "
                             f"send fewer or smaller images")

    def spend(self, pixels: int, what: str) -> None:
        """Count ``pixels`` (input and output) against the budget, or raise :class:`OverBudget`."""
        if self.max_pixels is not None and self.pixels + pixels > self.max_pixels:
            raise OverBudget(f"{what}: over this server's budget of {self.max_pixels:,} input and output pixels "
                             f"for one request; send the rest in another request, or smaller")
        self.pixels += pixels


def check(cancel) -> None:
    """A job's :meth:`Job.check`, or a plain event's: set means cancelled."""
    if isinstance(cancel, Job):
        cancel.check()
    elif cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


class FairSlot:
    """The device: one holder at a time, handed round-robin over the waiting jobs' owners."""

    def __init__(self):
        self._cond = threading.Condition()
        self._holder: Optional[object] = None
        self._waiting: List[Tuple[int, object]] = []  # (arrival, job)
        self._served: Dict[str, int] = {}  # owner -> the turn it was last served
        self._turn = 0

    def locked(self) -> bool:
        return self._holder is not None

    @contextmanager
    def hold(self, job) -> Iterator[None]:
        """The slot for one unit of ``job``'s work; waiting for it ends when the job is cancelled."""
        owner = getattr(job, "owner", "-")
        with self._cond:
            self._turn += 1
            ticket = (self._turn, job)
            self._waiting.append(ticket)
            try:
                while self._holder is not None or self._next() is not ticket:
                    check(job)
                    self._cond.wait(0.2)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()
            self._holder = job
            if len(self._served) > MAX_OWNERS:
                self._served.clear()
            self._served[owner] = self._turn
        if isinstance(job, Job):
            job.since = time.monotonic()
        try:
            yield
        finally:
            if isinstance(job, Job):
                job.held, job.since = job.device_seconds(), None
            with self._cond:
                self._holder = None
                self._cond.notify_all()

    def _next(self):
        # The owner served longest ago (never: first); among its jobs, the first to arrive.
        return min(self._waiting, key=lambda t: (self._served.get(getattr(t[1], "owner", "-"), 0), t[0]))


class Registry:
    """The running jobs of each (session, kind): the page's Cancel button finds its own tab's jobs by them."""

    RECENT = 10.0  # seconds a cancelled job still counts: gradio may have stopped it before the button's handler ran

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: Dict[Tuple[str, str], Set[Job]] = {}
        self._cancelled: Dict[Tuple[str, str], float] = {}  # when a job of this key last ended cancelled

    @contextmanager
    def running(self, job: Job, kind: str) -> Iterator[Job]:
        key = (job.owner, kind)
        with self._lock:
            self._jobs.setdefault(key, set()).add(job)
        try:
            yield job
        finally:
            with self._lock:
                jobs = self._jobs.get(key, set())
                jobs.discard(job)
                if not jobs:
                    self._jobs.pop(key, None)
                if job.is_set() and not getattr(job, "claimed", False):  # cancelled before the button's handler ran
                    if len(self._cancelled) > MAX_OWNERS:
                        self._cancelled.clear()
                    self._cancelled[key] = time.monotonic()

    def cancel(self, owner: str, kind: str) -> int:
        """Cancel the jobs of ``owner`` of this kind running now (not its later ones); how many, counting
        one that ended cancelled in the last :attr:`RECENT` seconds."""
        key = (owner, kind)
        with self._lock:
            jobs = list(self._jobs.get(key, ()))
            recent = time.monotonic() - self._cancelled.pop(key, -1e9) < self.RECENT
        for job in jobs:
            job.claimed = True  # this Cancel answers for it
            job.set()
        return len(jobs) or int(recent)
