"""The zoo: names, cache, downloads from a real local HTTP server, bundled models and the listing."""
import hashlib
import os
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from oracle import PaddedOracle, random_state, small
from webserver import file_server
from swinir_app import PRESETS, SwinIRConfig, build_network, downloads, load_model, zoo
from swinir_app.checkpoint import ModelLoadError, save_safetensors
from swinir_app.models import main as models_main

ISSUE_NAMES = ["classical-x2", "classical-x3", "classical-x4", "classical-x8", "lightweight-x2", "lightweight-x3",
               "lightweight-x4", "real-x4", "real-x4-large", "real-x4-psnr", "color-dn-15", "color-dn-25",
               "color-dn-50", "gray-dn-15", "gray-dn-25", "gray-dn-50", "gray-jpeg-10", "gray-jpeg-20",
               "gray-jpeg-30", "gray-jpeg-40", "color-jpeg-10", "color-jpeg-20", "color-jpeg-30", "color-jpeg-40"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test touches ~/.cache or the real bundled folder, or waits between retries."""
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path / "weights")
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.0)


def test_every_official_release_has_a_name_a_url_and_its_config():
    for name in ISSUE_NAMES:
        assert name in zoo.ZOO
    spellings = [n.lower() for e in zoo.ZOO.values() for n in e.names]
    assert len(spellings) == len(set(spellings))
    for e in zoo.ZOO.values():
        if e.manual:  # HAT: no stable URL
            assert e.url is None and e.config.arch == "hat" and "XPixelGroup/HAT" in e.by_hand
            continue
        if e.config.arch == "dat":  # the Hugging Face mirror, with the digests pinned where it is used
            assert e.url == zoo.DAT_URL + e.filename and len(e.sha256) == 64 and e.task == e.config.task
            assert e.config == SwinIRConfig.preset(e.name)
            continue
        base = ("https://github.com/mv-lab/swin2sr/releases/download/v0.0.1/" if e.config.arch == "swin2sr" else
                "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/")
        assert e.url == base + e.filename
        assert e.sha256 is None and e.task == e.config.task
    assert zoo.ZOO["real-x4-large"].config == SwinIRConfig.preset("real-x4-large")
    assert zoo.ZOO["classical-div2k-x3"].config == SwinIRConfig.preset("classical-x3", img_size=48)
    assert zoo.ZOO["color-jpeg-30"].config.img_range == 255.0 and zoo.ZOO["color-jpeg-30"].task == "jpeg"
    assert (zoo.ZOO["gray-dn-50"].task, zoo.ZOO["real-x4-psnr"].scale) == ("denoise", 4)


def test_entries_are_found_by_name_file_name_and_stem():
    entry = zoo.ZOO["real-x4"]
    assert zoo.find_entry("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth") is entry
    assert zoo.find_entry("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN") is entry
    assert zoo.find_entry("REAL-X4") is entry
    assert zoo.find_entry("001_classicalSR_DIV2K_s48w8_SwinIR-M_x8.pth").name == "classical-div2k-x8"
    assert zoo.find_entry("real-x3") is None
    with pytest.raises(ModelLoadError, match="unknown model 'clasical-x4'.*did you mean classical-x4") as e:
        load_model("clasical-x4")
    assert str(e.value).endswith("list the zoo with swinir-app models")  # the command the README documents


def test_cache_dir_is_weights_dir_then_env_then_home(tmp_path, monkeypatch):
    assert zoo.weights_home(tmp_path / "w") == tmp_path / "w"
    assert zoo.weights_home() == tmp_path / "home"
    monkeypatch.delenv("SWINIR_APP_HOME")
    assert str(zoo.weights_home()).endswith("/.cache/swinir_app") and "~" not in str(zoo.weights_home())
    assert zoo.local_path(zoo.ZOO["classical-x2"], tmp_path) == tmp_path / zoo.ZOO["classical-x2"].filename


@pytest.mark.parametrize("config", [
    *[small(p) for p in sorted(PRESETS)],
    small("real-x4", upscale=8), small("classical-x4", ape=True, patch_norm=False, qkv_bias=False, img_size=32),
    small("lightweight-x2", img_size=4), SwinIRConfig.preset("lightweight-x4"),
], ids=lambda c: f"{c.upsampler or 'none'}-x{c.upscale}-{c.resi_connection}-{c.embed_dim}")
def test_param_count_matches_the_built_network(config):
    assert zoo.param_count(config) == sum(p.numel() for p in build_network(config).parameters())


# ---------------------------------------------------------------------------------------------
# Downloads, from a real HTTP server on 127.0.0.1


@pytest.fixture
def server():
    """Serves ``routes[path] = (body, content_length)``; records every requested path in ``hits``."""
    with file_server() as served:
        yield served


def checkpoint_bytes(tmp_path, config, seed=0):
    """A BasicSR-style checkpoint of basicsr's SwinIR with random weights, and its oracle."""
    oracle = PaddedOracle(config).eval()
    oracle.net.load_state_dict(random_state(oracle.net, seed))
    path = tmp_path / f"src-{seed}.pth"
    torch.save({"params": oracle.net.state_dict()}, path)
    return path.read_bytes(), oracle


@pytest.fixture
def entry(tmp_path, server, monkeypatch):
    """A zoo entry served by ``server`` at /net.pth, registered for the test."""
    config = small("classical-x2")
    body, oracle = checkpoint_bytes(tmp_path, config)
    server.routes["/net.pth"] = (body, len(body))
    e = zoo.ZooEntry("test-x2", "test_x2.pth", config, config.task, url=server.url + "/net.pth")
    monkeypatch.setitem(zoo.ZOO, e.name, e)
    return SimpleNamespace(entry=e, body=body, oracle=oracle, cache=tmp_path / "cache")


def test_download_on_first_use_then_from_cache(entry, server):
    model = load_model("test-x2", weights_dir=entry.cache)
    assert sorted(p.name for p in entry.cache.iterdir()) == ["test_x2.pth"]
    assert (entry.cache / "test_x2.pth").read_bytes() == entry.body
    x = torch.rand(1, 3, 13, 17)
    with torch.no_grad():
        assert (model(x) - entry.oracle(x)).abs().max().item() <= 1e-4
    load_model("test_x2.pth", weights_dir=entry.cache)  # the file name works too
    assert server.hits == ["/net.pth"]  # the second load made no request


def test_a_killed_download_leaves_nothing_that_lasts(entry):
    """SIGKILL during a download leaves its .part file; the next download removes it (mtime: an hour ago)."""
    entry.cache.mkdir(parents=True)
    leftover = entry.cache / ".test_x2.pth.q8z_3kd1.part"
    leftover.write_bytes(entry.body[:1000])
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    load_model("test-x2", weights_dir=entry.cache)
    assert sorted(p.name for p in entry.cache.iterdir()) == ["test_x2.pth"]


def test_download_goes_to_swinir_app_home_by_default(entry, tmp_path):
    load_model("test-x2")
    assert (tmp_path / "home" / "test_x2.pth").is_file()


def assert_fails_clean(entry, match):
    with pytest.raises(ModelLoadError, match=match) as e:
        load_model("test-x2", weights_dir=entry.cache)
    assert "\n" not in str(e.value)
    assert not entry.cache.exists() or list(entry.cache.iterdir()) == []  # no partial or wrong file
    return str(e.value)


def test_404_is_not_retried(entry, server):
    server.routes.clear()
    message = assert_fails_clean(entry, r"cannot download http://127\.0\.0\.1:\d+/net\.pth \(HTTP 404")
    assert message.endswith(f"download it by hand and place it at {entry.cache / 'test_x2.pth'}")
    assert server.hits == ["/net.pth"]


def test_truncated_body_is_retried_then_refused(entry, server):
    server.routes["/net.pth"] = (entry.body[: len(entry.body) // 2], len(entry.body))
    assert_fails_clean(entry, f"truncated: got {len(entry.body) // 2} of {len(entry.body)} bytes, after 3 attempts")
    assert len(server.hits) == downloads.RETRIES


def test_a_checkpoint_of_another_model_is_refused(entry, server, tmp_path):
    other, _ = checkpoint_bytes(tmp_path, small("lightweight-x2"), seed=1)
    server.routes["/net.pth"] = (other, len(other))
    assert_fails_clean(entry, r"downloaded http://\S+ is not test-x2: it has .*upsampler 'pixelshuffledirect' "
                              r"instead of 'pixelshuffle'.*; nothing was cached")


def test_a_file_that_is_no_checkpoint_is_refused(entry, server):
    server.routes["/net.pth"] = (b"<html>rate limited</html>", 25)
    assert_fails_clean(entry, r"cannot read downloaded http://\S+: not a valid PyTorch checkpoint")


def test_pinned_sha256_is_checked(entry, monkeypatch):
    monkeypatch.setitem(zoo.ZOO, "test-x2", zoo.dataclasses.replace(entry.entry, sha256="0" * 64))
    assert_fails_clean(entry, "has sha256 [0-9a-f]{64}, expected 0{64}; nothing was cached")
    good = hashlib.sha256(entry.body).hexdigest()
    monkeypatch.setitem(zoo.ZOO, "test-x2", zoo.dataclasses.replace(entry.entry, sha256=good))
    load_model("test-x2", weights_dir=entry.cache)


def test_offline_error_names_the_url_and_the_place_for_the_file(entry, monkeypatch):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/net.pth"
    monkeypatch.setitem(zoo.ZOO, "test-x2", zoo.dataclasses.replace(entry.entry, url=url))
    target = entry.cache / "test_x2.pth"
    message = assert_fails_clean(entry, "refused")
    assert message.startswith(f"cannot download {url} (") and message.endswith(
        f"); download it by hand and place it at {target}")
    target.write_bytes(entry.body)  # as the message says
    assert load_model("test-x2", weights_dir=entry.cache).config == entry.entry.config


def test_a_wrong_file_in_the_cache_is_named(entry, tmp_path):
    other, _ = checkpoint_bytes(tmp_path, small("classical-x3"), seed=2)
    entry.cache.mkdir()
    (entry.cache / "test_x2.pth").write_bytes(other)
    with pytest.raises(ModelLoadError, match=f"{entry.cache / 'test_x2.pth'} is not test-x2: it has upscale 3 "
                                             "instead of 2; delete it to download it again"):
        load_model("test-x2", weights_dir=entry.cache)


def test_an_existing_path_wins_over_a_zoo_name(entry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test-x2").write_bytes(entry.body)
    load_model("test-x2")
    assert not (tmp_path / "home").exists()


# ---------------------------------------------------------------------------------------------
# Bundled models and the listing


def make_bundled(tmp_path, name="bundled-x2"):
    config = small("lightweight-x2")
    model = build_network(config)
    zoo.BUNDLED_DIR.mkdir(exist_ok=True)
    save_safetensors(zoo.BUNDLED_DIR / f"{name}.safetensors", model.state_dict(), config, {"name": name})
    return model


def test_bundled_models_are_discovered_and_load_offline(tmp_path):
    assert zoo.bundled_entries() == []  # the folder does not exist yet
    model = make_bundled(tmp_path)
    (entry,) = zoo.bundled_entries()
    assert (entry.name, entry.task, entry.scale, entry.url) == ("bundled-x2", "sr", 2, None)
    loaded = load_model("bundled-x2")
    assert loaded.config == model.config
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_listing_shows_every_entry_aligned_with_params_and_cache_state(tmp_path, capsys):
    """What runs here first (bundled, cached: with a description), then what does not yet (with its file)."""
    make_bundled(tmp_path)
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / zoo.ZOO["lightweight-x4"].filename).write_bytes(b"")  # there, but not a checkpoint
    torch.save({"params": build_network(zoo.ZOO["lightweight-x3"].config).state_dict()},
               weights / zoo.ZOO["lightweight-x3"].filename)
    assert models_main(["--weights-dir", str(weights)]) == 0
    out = capsys.readouterr().out
    here_part, rest = out.split("\n\n", 1)
    later_part = rest.split("\n\n", 1)[0]
    sections = []
    for part in (here_part, later_part):
        lines = part.splitlines()[1:]  # under the section's title
        header = lines[0]
        for line in lines[1:]:  # aligned: two spaces before the state column
            assert line[header.index("state") - 2: header.index("state")] == "  "
        sections.append((header.split(), {line.split()[0]: line for line in lines[1:]}))
    (here_header, here), (later_header, later) = sections
    assert here_header == ["name", "task", "scale", "params", "state", "arch", "description"]
    assert later_header == ["name", "task", "scale", "params", "state", "arch", "file"]
    assert list(here) == ["bundled-x2", "lightweight-x3"]  # bundled first, then cached
    assert set(later) == set(zoo.ZOO) - {"lightweight-x3"}
    assert here["lightweight-x3"].split()[1:6] == ["sr", "x3", "0.92M", "cached", "SwinIR"]
    assert "lightweight" in here["lightweight-x3"]  # a one-line description
    assert here["bundled-x2"].split()[4] == "bundled"
    assert later["classical-x4"].split()[1:6] == ["sr", "x4", "11.9M", "no", "SwinIR"]
    assert later["lightweight-x4"].split()[3:5] == ["0.93M", "unusable"]  # fails to load: not "cached"
    assert later["real-x4-large"].split()[3] == "28.0M"
    assert later["gray-jpeg-10"].split()[1:3] == ["jpeg", "x1"]
    assert later["hat-x4"].split()[4:7] == ["by", "hand", "HAT"]  # HAT's Google Drive files: placed by hand
    lines = out.splitlines()
    assert lines[-4] == f"cache: {weights}"
    assert lines[-3].startswith("by hand: place the file in the cache folder") and "XPixelGroup/HAT" in lines[-3]
    assert lines[-2].startswith("more: swinir-app models --search TEXT")
    assert lines[-1].startswith(f"unusable: cannot read {weights / zoo.ZOO['lightweight-x4'].filename}") \
        and lines[-1].endswith("delete it to download it again")


def test_cache_verdicts_are_remembered_until_the_file_changes(tmp_path, monkeypatch, capsys):
    """A second listing in the process reads no unchanged file again; a changed file is read and checked again."""
    monkeypatch.setattr(zoo, "_VERDICTS", {})
    reads = []
    real = zoo.load_checkpoint

    def spy(path, *args, **kwargs):  # the real reader, counted
        reads.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(zoo, "load_checkpoint", spy)
    weights = tmp_path / "w"
    weights.mkdir()
    good, bad = zoo.ZOO["lightweight-x3"], zoo.ZOO["lightweight-x4"]
    torch.save({"params": build_network(good.config).state_dict()}, weights / good.filename)
    (weights / bad.filename).write_bytes(b"not a checkpoint")

    assert zoo.cache_problem(good, weights) is None
    assert zoo.cache_problem(bad, weights).startswith(f"cannot read {weights / bad.filename}")
    assert sorted(reads) == sorted([good.filename, bad.filename])
    for _ in range(2):  # the listing, twice: nothing read again, the same verdicts
        assert models_main(["--weights-dir", str(weights)]) == 0
        out = capsys.readouterr().out
        assert f"unusable: cannot read {weights / bad.filename}" in out
    assert zoo.cache_problem(good, weights) is None
    assert len(reads) == 2

    # Replaced by another model's weights: read again, and now refused.
    torch.save({"params": build_network(zoo.ZOO["lightweight-x2"].config).state_dict()}, weights / good.filename)
    assert "is not lightweight-x3: it has upscale 2 instead of 3" in zoo.cache_problem(good, weights)
    assert reads[2:] == [good.filename]
    assert "is not lightweight-x3" in zoo.cache_problem(good, weights)  # that verdict is remembered too
    assert zoo.cache_problem(bad, weights) is not None and len(reads) == 3

    # Fixed: read again, and usable.
    torch.save({"params": build_network(good.config).state_dict()}, weights / good.filename)
    assert zoo.cache_problem(good, weights) is None and reads[3:] == [good.filename]


# ---------------------------------------------------------------------------------------------
# The listing answers fast: no network built, no unchanged file read again, even in a new process


@pytest.mark.slow
def test_the_tabled_parameter_counts_are_those_of_the_networks():
    from swinir_app.models import ZOO_PARAMS

    assert set(ZOO_PARAMS) == set(zoo.ZOO)
    assert {name: zoo.param_count(e.config) for name, e in zoo.ZOO.items()} == ZOO_PARAMS


def test_the_listing_builds_no_network_and_a_new_process_reads_no_unchanged_file(tmp_path, monkeypatch, capsys):
    import swinir_app.models as models

    make_bundled(tmp_path)
    weights = tmp_path / "w"
    weights.mkdir()
    good, bad = zoo.ZOO["lightweight-x3"], zoo.ZOO["lightweight-x4"]
    torch.save({"params": build_network(good.config).state_dict()}, weights / good.filename)
    (weights / bad.filename).write_bytes(b"not a checkpoint")
    built = []
    monkeypatch.setattr(models, "param_count", lambda config: built.append(config))
    monkeypatch.setattr(zoo, "_VERDICTS", {})
    assert models_main(["--weights-dir", str(weights)]) == 0
    first = capsys.readouterr().out
    counted = models.format_params(zoo.param_count(small("lightweight-x2")))
    row = next(line.split() for line in first.splitlines() if line.startswith("bundled-x2"))
    assert built == [] and row[3] == counted  # bundled: counted from the file's header
    reads = []
    real = zoo.load_checkpoint
    monkeypatch.setattr(zoo, "load_checkpoint", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    monkeypatch.setattr(zoo, "_VERDICTS", {})  # as in a new process: the verdicts are read from beside the files
    assert models_main(["--weights-dir", str(weights)]) == 0
    assert capsys.readouterr().out == first and reads == []
    torch.save({"params": build_network(zoo.ZOO["lightweight-x2"].config).state_dict()}, weights / good.filename)
    monkeypatch.setattr(zoo, "_VERDICTS", {})
    assert "is not lightweight-x3" in zoo.cache_problem(good, weights)  # changed: read again
    assert [p.name for p in map(Path, reads)] == [good.filename]
    assert zoo.cache_problem(bad, weights).startswith(f"cannot read {weights / bad.filename}")  # remembered
    assert len(reads) == 1
