"""Downloads into a cache: one URL to one file, whole and verified or not at all.

The body goes to a ``.part`` file beside the destination (with a progress bar), is checked against a pinned
sha256 and the caller's ``verify``, and only then renamed into place. Connection errors, 5xx, 429 and truncated
bodies are retried with backoff; other HTTP errors are not. The zoo and OpenModelDB's index use it.
"""
from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional, TypeVar

from .checkpoint import ModelLoadError
from .files import atomic_file, remove_stale_parts

__all__ = ["download"]

RETRIES = 3  # attempts per download
RETRY_DELAY = 1.0  # seconds before the 2nd attempt, doubled each time
TIMEOUT = 30.0  # seconds without data before an attempt fails

T = TypeVar("T")


def download(url: str, dest: Path, verify: Callable[[Path], T], *, sha256: Optional[str] = None) -> T:
    """Fetch ``url`` to ``dest`` through a temp file next to it, and return ``verify(temp_file)``.

    The file is renamed into place only once its sha256 (if pinned) and ``verify`` pass, so the
    cache never holds a partial or wrong file. Connection errors, 5xx and truncated bodies are
    retried with backoff; other HTTP errors are not.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest.parent)  # left by downloads that were killed
    with atomic_file(dest) as out:  # readers see no file or the whole verified file
        digest = _fetch_with_retries(url, out, dest)
        if sha256 and digest != sha256.lower():
            raise ModelLoadError(f"downloaded {url} has sha256 {digest}, expected {sha256}; nothing was cached")
        out.flush()
        result = verify(Path(out.name))
    return result


def _fetch_with_retries(url: str, out, dest: Path) -> str:
    for attempt in range(1, RETRIES + 1):
        try:
            return _fetch(url, out, dest.name)
        except urllib.error.HTTPError as e:  # before URLError/OSError: it is both
            reason = f"HTTP {e.code} {e.reason}"
            if e.code < 500 and e.code != 429:
                break  # 404 and friends will not get better
        except urllib.error.URLError as e:
            reason = str(e.reason)
        except (OSError, http.client.HTTPException) as e:
            reason = str(e) or type(e).__name__
        if attempt < RETRIES:
            time.sleep(RETRY_DELAY * 2 ** (attempt - 1))
    tries = f", after {attempt} attempts" if attempt > 1 else ""
    raise ModelLoadError(f"cannot download {url} ({reason}{tries}); download it by hand and place it at {dest}")


def _fetch(url: str, out, label: str) -> str:
    """One attempt: the body of ``url`` into ``out`` (rewound first); returns its sha256."""
    from tqdm import tqdm

    out.seek(0)
    out.truncate()
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr,
                  leave=False) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        # http.client returns a short body silently when the server closes early.
        raise ConnectionError(f"truncated: got {received} of {expected} bytes")
    return digest.hexdigest()
