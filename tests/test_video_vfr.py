"""Videos with a variable frame rate (phone and screen recordings, anime MKVs), whole and in time slices;
headers that lie about the frame size; what killed runs leave behind; encoders without a quality setting."""
import io
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, photo
from swinir_app import Restorer
from swinir_app.upscale import main

TIMES_MS = (0, 40, 80, 200, 240, 500, 540, 1000, 1040, 1100)  # gaps of 40 to 460 ms
SAMPLE_RATE = 48000


def write_vfr(path: Path, audio_seconds: float = 1.2) -> list:
    """A 10-frame 32x24 H.264 clip with frames at TIMES_MS (a 1/1000 time base) and a 1.2 s AAC track."""
    base = photo("astronaut")[80:104, 180:212]
    frames = [np.ascontiguousarray(np.roll(base, 3 * k, axis=1)) for k in range(len(TIMES_MS))]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=SAMPLE_RATE)
        a.layout = "mono"
        for f, ms in zip(frames, TIMES_MS):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = ms, Fraction(1, 1000)
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        t = np.arange(int(SAMPLE_RATE * audio_seconds)) / SAMPLE_RATE
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, wave.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = SAMPLE_RATE, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    return frames


def remux(src: Path, dst: Path) -> None:
    """A stream copy into another container (as `ffmpeg -c copy`)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                o.mux(p)


@pytest.fixture(scope="module")
def vfr_clips(tmp_path_factory):
    """The VFR clip as MP4, as MKV written directly, and as MKV remuxed from the MP4 (in one folder)."""
    folder = tmp_path_factory.mktemp("vfr")
    write_vfr(folder / "vfr.mp4")
    write_vfr(folder / "vfr.mkv")
    remux(folder / "vfr.mp4", folder / "remux.mkv")
    return folder


def video_times(path: Path) -> list:
    """The decoded frames' times, exactly (Fractions of a second)."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def audio_packets(path: Path) -> list:
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts * p.time_base) for p in c.demux(audio=0) if p.size]


def frames_of(path: Path) -> list:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


ALL = ("vfr.mp4", "vfr.mkv", "remux.mkv")


@pytest.mark.parametrize("segments, names", [(1, ALL), (2, ALL), (3, ALL),
                                             (4, ALL[1:2])])  # 4: a slice (570-855 ms) without a frame
def test_vfr_video_keeps_every_frame_time_and_sound(ckpt, trained_x2, vfr_clips, tmp_path, capsys, segments, names):
    out = tmp_path / "out"
    argv = [*(str(vfr_clips / n) for n in names), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]
    assert main(argv + ["--segments", str(segments)]) == 0
    err = capsys.readouterr().err
    assert "error" not in err and f"done {len(names)}, skipped 0, failed 0" in err, err
    assert f"{10 * len(names)} frames" in err, err
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no slice or .part file left
    restorer = Restorer(trained_x2, device="cpu")
    for name in names:
        src, dst = vfr_clips / name, out / name
        assert video_times(dst) == video_times(src), name
        assert audio_packets(dst) == audio_packets(src), name  # copied, not re-encoded or cut
        # Each frame in its place: the restored input frame it is closest to is its own.
        want = [restorer.restore(f) for f in frames_of(src)]
        for i, got in enumerate(frames_of(dst)):
            errors = [np.abs(got.astype(int) - w).mean() for w in want]
            assert int(np.argmin(errors)) == i and errors[i] < 8, (name, i, errors)


@pytest.mark.parametrize("segments", [1, 2])
def test_truncated_vfr_mkv_is_still_refused(ckpt, vfr_clips, tmp_path, capsys, segments):
    # Judged from the frames' own times and durations against the stream's duration: a cut file still fails.
    src = tmp_path / "in"
    src.mkdir()
    data = (vfr_clips / "vfr.mkv").read_bytes()
    (src / "cut.mkv").write_bytes(data[: len(data) // 2])  # the frames after 540 ms are lost
    out = tmp_path / "out"
    assert main([str(src / "cut.mkv"), "-o", str(out), "--model", str(ckpt), "--device", "cpu",
                 "--segments", str(segments)]) == 1
    err = capsys.readouterr().err
    assert f"error: {src / 'cut.mkv'}: the video stops at " in err and "(truncated)" in err, err
    assert "Traceback" not in err and not list(out.iterdir())


def test_a_join_that_loses_frames_fails(vfr_clips, tmp_path):
    from swinir_app.video import VideoError, join_segments, restore_video
    src = vfr_clips / "vfr.mkv"
    parts, times = [], []
    for k in range(2):
        parts.append(tmp_path / f"part{k}.nut")
        times += restore_video(src, parts[-1], lambda a: a, segment=(k, 2)).times
    assert len(times) == 10
    assert join_segments(src, parts, tmp_path / "ok.mkv", expected=times) == 10
    assert video_times(tmp_path / "ok.mkv") == video_times(src)
    with pytest.raises(VideoError, match=r"vfr.mkv: the joined video holds 7 of the 10 frames restored"):
        join_segments(src, parts[:1], tmp_path / "lost.mkv", expected=times)
    with pytest.raises(VideoError, match=r"vfr.mkv: the joined video has 1 frames at other times than restored"):
        join_segments(src, parts, tmp_path / "moved.mkv", expected=times[:-1] + [times[-1] + 5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mkv", "part0.nut", "part1.nut"]  # nothing else


def write_lying_mjpeg(path: Path, big=(400, 400)) -> None:
    """An MJPEG video whose header says 32x32 (its first frame) but whose later frames are ``big`` JPEGs:
    each MJPEG packet is a whole JPEG of its own size."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mjpeg", rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuvj420p"
        vs.time_base = Fraction(1, 10)
        for k, (w, h) in enumerate([(32, 32), big, big]):
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(photo("coffee")[:h, :w])).save(buf, "JPEG")
            p = av.Packet(buf.getvalue())
            p.pts = p.dts = k
            p.time_base, p.stream, p.is_keyframe = Fraction(1, 10), vs, True
            c.mux(p)


def test_max_pixels_holds_for_every_decoded_frame(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_lying_mjpeg(src / "lie.mkv")
    Image.fromarray(photo("chelsea")[:24, :32]).save(src / "fine.png")
    with av.open(str(src / "lie.mkv")) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (32, 32)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--max-pixels", "100000"]) == 1
    err = capsys.readouterr().err
    assert (f"error: {src / 'lie.mkv'}: a frame of 400x400 exceeds the limit of 100,000 pixels (the header says "
            f"32x32)\n") in err, err
    assert "done 1, skipped 0, failed 1" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["fine.png"]


def test_stale_slices_and_parts_are_removed_even_without_work(ckpt, vfr_clips, tmp_path, capsys):
    # A killed `--segments 3` run left a slice and a .part file; the rerun skips the finished output.
    out = tmp_path / "out"
    out.mkdir()
    (out / "vfr.mp4").write_bytes(b"an earlier result")
    old = [out / ".vfr.mp4.segment-1-of-3.nut", out / ".vfr.mp4.segment-2-of-3.nut.0a1b2c3d.part",
           out / ".vfr.mp4.3f2e1d0c.part"]
    fresh = out / ".vfr.mp4.segment-2-of-3.nut"  # as if a live run had just written it
    mine = out / ".vfr.mp4.segment-1-of-3.nut.bak"  # not this product's name
    for path in old + [fresh, mine]:
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    for path in old + [mine]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert main([str(vfr_clips / "vfr.mp4"), "-o", str(out), "--model", str(ckpt), "--device", "cpu",
                 "--skip-existing", "--segments", "2"]) == 0
    err = capsys.readouterr().err
    assert "done 0, skipped 1, failed 0" in err
    for path in old:
        assert f"note: removed {path}, left by an interrupted run" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(["vfr.mp4", fresh.name, mine.name])


def test_a_finished_slice_is_kept_fresh_until_its_join(tmp_path):
    # Else a run started meanwhile in the same folder would take it for a killed run's (15 minutes old).
    from swinir_app.upscale import _KeepFresh
    part = tmp_path / ".clip.mp4.segment-1-of-2.nut"
    part.write_bytes(b"x")
    os.utime(part, (time.time() - 3600, time.time() - 3600))
    fresh = _KeepFresh(every=0.05)
    fresh.add(part)
    deadline = time.time() + 10
    while time.time() - part.stat().st_mtime > 60 and time.time() < deadline:
        time.sleep(0.05)
    part.unlink()  # joined and removed: the keeper carries on quietly
    time.sleep(0.2)
    fresh.close()
    assert time.time() < deadline and not fresh.thread.is_alive()


def test_mpeg4_is_not_left_at_ffmpegs_default_bitrate(trained_x2, tmp_path):
    # FFmpeg's 200 kb/s default, whatever the frame size; a fixed fine quantiser instead.
    from swinir_app.video import restore_video
    src = tmp_path / "clip.mkv"
    base = photo("astronaut")[80:128, 180:244]
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=12, options={"crf": "0"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv444p"
        for k in range(4):
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 2 * k, axis=1)))):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    restorer = Restorer(trained_x2, device="cpu")
    restore_video(src, tmp_path / "out.mkv", restorer.restore, codec="mpeg4")
    got, want = frames_of(tmp_path / "out.mkv"), [restorer.restore(f) for f in frames_of(src)]
    assert len(got) == 4
    luma = np.array([0.299, 0.587, 0.114])  # in luma: 4:2:0 chroma costs any encoder alike (x264 too: 32 dB RGB)
    worst = min(10 * np.log10(255 ** 2 / np.mean((a @ luma - b @ luma) ** 2)) for a, b in zip(got, want))
    assert worst > 38, worst  # x264 at crf 18: 40 dB; mpeg4 at its default bitrate: 35 dB


def torchrun_upscale(*args: str) -> subprocess.CompletedProcess:
    """``swinir-app upscale ARGS`` under torchrun on two CPU processes."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "swinir_app.upscale", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)


@pytest.mark.slow
def test_torchrun_restores_vfr_slices_on_two_ranks(ckpt, vfr_clips, tmp_path):
    # A slice each: the first one's NUT packets come back without dts, which the join used to drop.
    out = tmp_path / "out"
    r = torchrun_upscale(str(vfr_clips / "vfr.mp4"), str(vfr_clips / "vfr.mkv"), "-o",
                         str(out), "--model", str(ckpt), "--device", "cpu", "--segments", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done 2, skipped 0, failed 0" in r.stderr and "20 frames" in r.stderr and "on 2 processes" in r.stderr
    for name in ("vfr.mp4", "vfr.mkv"):
        assert video_times(out / name) == video_times(vfr_clips / name)
        assert audio_packets(out / name) == audio_packets(vfr_clips / name)
    assert sorted(p.name for p in out.iterdir()) == ["vfr.mkv", "vfr.mp4"]


def write_cfr(path: Path, n: int = 6) -> None:
    """A constant 25 fps 32x24 H.264 clip: an MP4 keeps it in a 1/12800 time base."""
    base = photo("astronaut")[80:104, 180:212]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        for k in range(n):
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 3 * k, axis=1)))):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)


def luma_psnr(a, b) -> float:
    luma = np.array([0.299, 0.587, 0.114])
    return 10 * np.log10(255 ** 2 / max(np.mean((a @ luma - b @ luma) ** 2), 1e-10))


@pytest.mark.parametrize("codec, name, segments", [("mpeg2video", "cfr.mp4", 1), ("mjpeg", "cfr.mp4", 1),
                                                   ("mpeg2video", "vfr.mkv", 1), ("mpeg1video", "vfr.mkv", 1),
                                                   ("mpeg2video", "vfr.mp4", 3)])
def test_mpeg2_and_mjpeg_keep_every_frame_at_its_time(ckpt, trained_x2, vfr_clips, tmp_path, capsys, codec, name,
                                                      segments):
    # MPEG-1/2 take only standard frame rates (not a 1/12800 time base); MJPEG only full-range YUV. In slices,
    # MPEG-2's NUT packets come back with a dts one frame late, which the join must not keep.
    src = vfr_clips / name
    if name == "cfr.mp4":
        src = tmp_path / name
        write_cfr(src)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--video-codec", codec,
                 "--segments", str(segments)]) == 0
    assert "error" not in capsys.readouterr().err
    assert video_times(out / name) == video_times(src)
    restorer = Restorer(trained_x2, device="cpu")
    got, want = frames_of(out / name), [restorer.restore(f) for f in frames_of(src)]
    assert min(luma_psnr(a, b) for a, b in zip(got, want)) > 36  # 39 to 41 dB in luma


def test_an_encoder_that_cannot_open_says_why_in_one_line(ckpt, vfr_clips, tmp_path, capsys):
    src = tmp_path / "clip.avi"  # AVI holds H.261, whose encoder takes only 176x144 and 352x288
    write_cfr(src)
    out = tmp_path / "out"
    assert main([str(src), str(vfr_clips / "vfr.mp4"), "-o", str(out), "--model", str(ckpt), "--device", "cpu",
                 "--video-codec", "h261"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {src}: the encoder h261 cannot be opened with these settings (The specified picture "
                      f"size of 64x48 is not valid for the H.261 codec. Valid sizes are 176x144, 352x288)",
                      f"error: {vfr_clips / 'vfr.mp4'}: the mp4 container cannot hold h261 video; choose another "
                      f"--video-codec"], err
    assert "Traceback" not in err and "done 0, skipped 0, failed 2" in err and not list(out.iterdir())


def test_a_bad_video_in_slices_is_one_line_and_one_failure(ckpt, vfr_clips, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    data = (vfr_clips / "vfr.mp4").read_bytes()
    (src / "a_trunc.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    (src / "b_fine.mp4").write_bytes(data)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--segments", "3"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{src / 'a_trunc.mp4'}: cannot read video" in errors[0], err
    assert "done 1, skipped 0, failed 1" in err
    # A model whose output is NaN: one line, that speaks of a frame and a video.
    from swinir_app.checkpoint import ModelOutputError

    def nan(self, image, *a, **k):
        raise ModelOutputError("the model (fp32) produced NaN or Inf values (weights that overflow on this input?); "
                               "the image would come out black, so it is not written")
    monkeypatch.setattr(Restorer, "restore", nan)
    Image.fromarray(photo("chelsea")[:24, :32]).save(tmp_path / "still.png")
    assert main([str(src / "b_fine.mp4"), str(tmp_path / "still.png"), "-o", str(tmp_path / "nan"), "--model",
                 str(ckpt), "--device", "cpu", "--segments", "3"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    reason = "the model (fp32) produced NaN or Inf values (weights that overflow on this input?); the "
    assert errors == [f"error: {src / 'b_fine.mp4'}: the frame at 0.00 s: {reason}frame would come out black, so the "
                      f"video is not written",
                      f"error: {tmp_path / 'still.png'}: {reason}image would come out black, so it is not written"], err
    assert "done 0, skipped 0, failed 2" in err and "Error" not in err


def write_video_only(path: Path) -> None:
    """The VFR clip's video alone, in Matroska, without B-frames (so packets are in display order)."""
    base = photo("astronaut")[80:104, 180:212]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25, options={"bf": "0"})
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(TIMES_MS):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 3 * k, axis=1)), format="rgb24")
            vf.pts, vf.time_base = ms, Fraction(1, 1000)
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)


def test_a_soundless_mkv_that_loses_its_last_frames_is_refused(ckpt, tmp_path, capsys):
    # Its last 2 frames (1040 and 1100 ms) of 10 are cut off: the rest ends at 1040 ms of the 1140 declared, within
    # 1.5 mean frame steps over the whole clip (214 ms), but 2.5 steps of its own last frame (40 ms).
    src = tmp_path / "in"
    src.mkdir()
    write_video_only(src / "whole.mkv")
    with av.open(str(src / "whole.mkv")) as c:
        assert (c.streams.video[0].metadata or {}).get("DURATION", "").startswith("00:00:01.14")
        cut = next(p.pos for p in c.demux(video=0) if p.pts == 1040)
    (src / "cut.mkv").write_bytes((src / "whole.mkv").read_bytes()[:cut])
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {src / 'cut.mkv'}: the video stops at 1.04 s of its 1.14 s (truncated)"], err
    assert "done 1, skipped 0, failed 1" in err and "10 frames" in err
    assert video_times(out / "whole.mkv") == video_times(src / "whole.mkv")
    assert sorted(p.name for p in out.iterdir()) == ["whole.mkv"]


def test_usage_notes_and_encoder_chatter(ckpt, vfr_clips, tmp_path, capfd):
    with pytest.raises(SystemExit) as e:
        main([str(vfr_clips / "vfr.mp4"), "-o", str(tmp_path / "u"), "--segments", "0"])
    assert e.value.code == 2
    err = capfd.readouterr().err
    assert err.endswith("error: argument --segments: must be at least 1, got '0' (see python -m swinir_app.upscale "
                        "--help)\n"), err
    for extra, message in ((["--outscale", "0"], "--outscale must be positive"),
                           (["--overwrite", "--skip-existing"], "--skip-existing and --overwrite exclude each other")):
        with pytest.raises(SystemExit):
            main([str(vfr_clips / "vfr.mp4"), "-o", str(tmp_path / "u"), *extra])
        assert capfd.readouterr().err.endswith(f"error: {message} (see python -m swinir_app.upscale --help)\n")
    # x265 prints its settings and a summary itself, once per slice: only with --debug.
    assert main([str(vfr_clips / "vfr.mkv"), "-o", str(tmp_path / "x265"), "--model", str(ckpt), "--device", "cpu",
                 "--video-codec", "libx265", "--segments", "2", "--crf", "20"]) == 0
    err = capfd.readouterr().err
    assert "encoded" not in err and "x265 [info]" not in err and "done 1, skipped 0, failed 0" in err, err
    assert main([str(vfr_clips / "vfr.mkv"), "-o", str(tmp_path / "m4"), "--model", str(ckpt), "--device", "cpu",
                 "--video-codec", "mpeg4", "--crf", "20"]) == 0
    err = capfd.readouterr().err
    assert "note: --crf is not used by mpeg4 (only by libx264, " in err and "; it runs at a fixed quantiser of 2" in err


@pytest.mark.slow
def test_torchrun_says_a_bad_video_in_slices_once(ckpt, vfr_clips, tmp_path):
    # Its slices fail on both ranks: one line, one failure.
    data = (vfr_clips / "vfr.mp4").read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    r = torchrun_upscale(str(tmp_path / "trunc.mp4"), str(vfr_clips / "vfr.mkv"), "-o",
                         str(out), "--model", str(ckpt), "--device", "cpu", "--segments", "3")
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'trunc.mp4'}: cannot read video: Invalid data found when processing "
                      f"input"], r.stderr[-3000:]
    assert "done 1, skipped 0, failed 1" in r.stderr and sorted(p.name for p in out.iterdir()) == ["vfr.mkv"]
