"""The web app's per-request limits, for real: ``python app.py`` with tiny limits, driven by gradio_client
and raw HTTP on 127.0.0.1. Pixel and time budgets, frames counted as decoded, URLs refused unfetched,
a port in use, and NaN outputs. Each input is built here.
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, photo
from webserver import free_port, serving

MAX_PIXELS = 5_000  # per image and per frame: a 64 x 48 frame fits, a 100 x 100 one does not
MAX_OUTPUT_PIXELS = 1_000_000
REQUEST_PIXELS = 40_000  # a 48 x 48 image at x2 spends 2,304 + 9,216 = 11,520: three fit, not four
REQUEST_SECONDS = 2
VIDEO_FRAMES = 5
# The server believes 127.0.0.1 is a public address, as a server on the internet believes of the sender's
# host: without that, gradio's own check would refuse the URL to our local listener and prove nothing.
# Raw HTTP sends every input (gradio_client fills the defaults): mix, seamless, alpha, width, height, keep_metadata.
NEW_OPTIONS = [0, False, "bicubic", 0, 0, True]
LAUNCH = ("import sys, safehttpx; safehttpx.is_public_ip = lambda ip: True; "
          "from swinir_app.webui.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def nan_ckpt(trained_x2, tmp_path_factory):
    """The small model with finite weights too large for float32 sums: its output is NaN, in fp32 too."""
    state = {k: v.clone() for k, v in trained_x2.state_dict().items()}
    state["conv_first.weight"].fill_(3e38)
    path = tmp_path_factory.mktemp("nan") / "nan_x2.pth"
    torch.save({"params": state}, path)
    return path


@pytest.fixture(scope="module")
def server(ckpt, nan_ckpt, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    models = tmp / "weights"
    models.mkdir()
    (models / "nan.pth").write_bytes(nan_ckpt.read_bytes())
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "SWINIR_APP_HOME": str(models), "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    cmd = [sys.executable, "-c", LAUNCH, "--host", "127.0.0.1", "--port", str(port), "--model", str(ckpt),
           "--device", "cpu", "--max-pixels", str(MAX_PIXELS), "--max-output-pixels", str(MAX_OUTPUT_PIXELS),
           "--max-file-size", "1mb", "--max-temp-size", "5mb", "--max-request-pixels", str(REQUEST_PIXELS),
           "--max-request-seconds", str(REQUEST_SECONDS), "--max-video-frames", str(VIDEO_FRAMES)]
    log_path = tmp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    with serving(cmd, env, url, log_path):
        yield url, log_path, str(ckpt)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server[0], verbose=False)


def png(path: Path, h: int, w: int) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(photo("chelsea")[:h, :w]), cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.slow
def test_a_batch_stops_at_its_pixel_budget(client, tmp_path):
    """Legal small images, many of them: the request does what its pixel budget pays for, and says so."""
    from gradio_client import handle_file
    album = tmp_path / "album.zip"
    one = png(tmp_path / "one.png", 48, 48).read_bytes()
    with zipfile.ZipFile(album, "w") as z:
        for i in range(10):
            z.writestr(f"{i}.png", one)
    zip_path, report = client.predict([handle_file(str(album))], api_name="/batch")
    lines = report.splitlines()
    assert lines[0].startswith("3 of 10 images done"), report
    assert lines[1] == (f"album/3.png: over this server's budget of {REQUEST_PIXELS:,} input and output pixels "
                        f"for one request; send the rest in another request, or smaller")
    assert lines[2] == "6 more not done: the request's budget is spent"
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["album/0.png", "album/1.png", "album/2.png", "errors.txt"]


@pytest.mark.slow
def test_a_request_stops_at_its_time_limit(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    image = png(tmp_path / "slow.png", 70, 70)  # 4,900 pixels; 8-pixel tiles overlapping by 4, self-ensemble:
    start = time.monotonic()  # 2,312 model passes, over 5 s on a fast idle core
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(image)), tile="8", tile_overlap=4, self_ensemble=True, api_name="/restore")
    assert str(e.value) == (f"stopped after {REQUEST_SECONDS} s of work, this server's limit for one request; "
                            f"send fewer or smaller images")
    assert time.monotonic() - start < REQUEST_SECONDS + 20


def write_clip(path: Path, n: int, fmt: str, options=None, size=(32, 32), codec="libvpx", packets=None) -> Path:
    """``n`` frames of a moving photo; ``packets``: JPEG bytes muxed as they are, whatever the header says."""
    w, h = size
    base = photo("astronaut")[100:100 + h, 200:200 + w]
    with open(path, "wb") as f, av.open(f, "w", format=fmt, options=options or {}) as c:
        vs = c.add_stream(codec, rate=24)
        vs.time_base = Fraction(1, 24)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if packets is not None:
            for i, data in enumerate(packets):
                p = av.Packet(data)
                p.stream, p.pts, p.dts, p.time_base = vs, i, i, vs.time_base
                p.is_keyframe = True
                c.mux(p)
            return path
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 2 * k, axis=1)), format="rgb24")
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    return path


def call(url: str, api_name: str, data: list, session: str) -> list:
    """An event by its name, as the page sends it (raw HTTP: the page's events are not in the public API);
    the messages it streams back."""
    config = json.loads(urllib.request.urlopen(url + "config").read())
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)
    body = json.dumps({"data": data, "fn_index": fn, "session_hash": session, "event_data": None}).encode()
    urllib.request.urlopen(urllib.request.Request(url + "gradio_api/queue/join", data=body,
                                                  headers={"Content-Type": "application/json"}), timeout=30)
    stream = urllib.request.urlopen(url + f"gradio_api/queue/data?session_hash={session}", timeout=120)
    return [json.loads(line[6:]) for line in stream.read().decode().splitlines() if line.startswith("data: ")]


def video_run(server, path: Path) -> str:
    """Upload ``path`` and run the Video tab on it; the status line it ends with."""
    import httpx
    url, _, model = server
    with open(path, "rb") as f:
        uploaded = httpx.post(url + "gradio_api/upload", files={"files": (path.name, f)}).json()[0]
    file = {"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    events = call(url, "ui_video", [file, model, "", 2, 0, "auto", 32, "auto", False, *NEW_OPTIONS],
                  f"video-{path.stem}")
    done = next(ev for ev in events if ev.get("msg") == "process_completed")
    video, status = done["output"]["data"]
    assert video is None, done
    return status["value"]


@pytest.mark.slow
def test_video_frames_are_counted_as_decoded(server, tmp_path):
    """A live WebM declares no duration; frames past --max-video-frames stop the run with one line."""
    live = write_clip(tmp_path / "live.webm", 12, "webm", {"live": "1"})
    with av.open(str(live)) as c:
        assert not c.duration and not c.streams.video[0].frames  # the header says nothing of its length
    assert video_run(server, live) == (f"⚠️ live.webm: stopped at frame {VIDEO_FRAMES + 1}: over this server's limit of "
                             f"{VIDEO_FRAMES} frames; send a shorter clip")


@pytest.mark.slow
def test_video_frames_larger_than_the_header_says_are_refused(server, tmp_path):
    """MJPEG whose header and first frame say 32x32, and whose second frame decodes to 100x100 (over
    --max-pixels), as a GIF's later frame can enlarge its canvas."""
    small, big = (cv2.imencode(".jpg", np.full((n, n, 3), 128, np.uint8))[1].tobytes() for n in (32, 100))
    clip = write_clip(tmp_path / "liar.mkv", 3, "matroska", codec="mjpeg", packets=[small, big, big])
    assert video_run(server, clip) == "⚠️ liar.mkv: frame 2 is 100x100 = 10,000 pixels, over the limit of 5,000"


@pytest.mark.slow
def test_urls_are_refused_unfetched(server):
    """A FileData whose path is a URL: gradio would download it in full, past every limit. Nothing is fetched."""
    url = server[0]
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = bytes(2 << 20)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        remote = f"http://127.0.0.1:{listener.server_address[1]}/big.png"
        file = {"path": remote, "url": remote, "meta": {"_type": "gradio.FileData"}}
        events = call(url, "restore", [file, "", 0, 0, "auto", 32, "auto", False, *NEW_OPTIONS], "urls1")
    finally:
        listener.shutdown()
    assert hits == []
    assert any("files must be uploaded to this server first" in json.dumps(ev) for ev in events), events


@pytest.mark.slow
def test_nan_outputs_are_a_one_line_failure(client, tmp_path, server):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(png(tmp_path / "cat.png", 40, 40))), model="nan.pth", api_name="/restore")
    text = str(e.value)  # the engine's own words, not a generic failure that sends the user to the server log
    assert text.startswith("cat.png: ") and "NaN or Inf" in text and "\n" not in text, text
    assert "server log" not in text and "ModelOutputError" not in text, text


@pytest.mark.slow
def test_model_typos_get_a_suggestion_among_the_offered_models(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from swinir_app.webui.catalogue import GENERIC_REFUSAL
    image = handle_file(str(png(tmp_path / "cat.png", 40, 40)))
    with pytest.raises(AppError) as e:
        client.predict(image, model="nan.ptth", api_name="/restore")
    assert str(e.value) == f"did you mean nan.pth? {GENERIC_REFUSAL}"
    with pytest.raises(AppError) as e:
        client.predict(image, model="/etc/passwdd", api_name="/restore")  # nothing like it is offered
    assert str(e.value) == GENERIC_REFUSAL
    with pytest.raises(AppError) as e:
        client.predict(image, model="classical-x4", api_name="/restore")
    assert "--allow-downloads" in str(e.value) and "python -m swinir_app.models" not in str(e.value)


@pytest.mark.slow
def test_a_port_in_use_is_one_line_before_the_model_loads(ckpt):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        r = subprocess.run([sys.executable, "app.py", "--port", str(port), "--model", str(ckpt), "--device", "cpu"],
                           cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert r.returncode == 2
    assert r.stderr == (f"error: --port {port}: 127.0.0.1:{port} is already in use (another server, or this app "
                        f"running); choose another with --port\n"), r.stderr
    assert time.monotonic() - start < 30


def test_the_model_fields_hint_follows_the_servers_settings(ckpt, tmp_path, monkeypatch):
    from swinir_app.webui.page import Page
    from swinir_app.webui.service import CUSTOM, AppConfig, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path))
    strict = Page(WebApp(AppConfig(model=str(ckpt), device="cpu"))).on_model(CUSTOM, "")[1]
    assert strict == ("Enter a checkpoint file in this server's models folder, or the name of a zoo model already "
                      "downloaded on this server.")
    downloads = Page(WebApp(AppConfig(model=str(ckpt), device="cpu", allow_downloads=True))).on_model(CUSTOM, "")[1]
    assert "downloaded on first use" in downloads
