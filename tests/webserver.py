"""Starting the web app for a test: a free port on 127.0.0.1, waiting until it serves, stopping it."""
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(cmd: List[str], env: Dict[str, str], url: str, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (the app, logging to ``log_path``) until ``url`` answers 200, yield its process, and stop it
    with Ctrl-C afterwards unless the test already stopped it. The test fails with the log's end if the app
    exits or does not serve within 180 s."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not serve {url} in 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def file_server() -> Iterator[object]:
    """A plain HTTP server on 127.0.0.1 for download tests: serves ``routes[path]``, a body or a
    ``(body, declared Content-Length)`` pair (a short body then ends the connection early); 404 elsewhere.
    Records every requested path in ``hits``. Yields ``SimpleNamespace(url, routes, hits)``."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    routes, hits = {}, []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path not in routes:
                self.send_error(404)
                return
            route = routes[self.path]
            body, length = route if isinstance(route, tuple) else (route, len(route))
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this, even if short

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", routes=routes, hits=hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
