"""OpenModelDB: the index fetched once from a real HTTP server on 127.0.0.1 and searched offline, and
``openmodeldb:ID`` specs downloaded once (sha256 checked), refused in one line when they cannot be."""
import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from webserver import file_server
from swinir_app import SwinIRConfig, build_network, downloads, load_model, openmodeldb, zoo
from swinir_app.checkpoint import ModelLoadError
from swinir_app.cli.main import main as swinir_app

TINY = SwinIRConfig.preset("lightweight-x2").replace(depths=(2,), num_heads=(2,), embed_dim=16)
INDEX = "/api/v1/models.json"
DRIVE = "https://drive.google.com/file/d/1AbCdEfGh/view?usp=sharing"


@pytest.fixture
def server():
    """Serves ``routes[path] = body``; records every requested path in ``hits``."""
    with file_server() as served:
        yield served


def model_json(name, arch, scale, urls, *, sha256, size, tags=("general-upscaler",), licence="CC-BY-4.0",
               description="A model.", kind="pth"):
    """One ``data/models/<ID>.json`` of the OpenModelDB repository, in its format."""
    return {"name": name, "author": "someone", "license": licence, "tags": list(tags), "description": description,
            "date": "2025-01-01", "architecture": arch, "size": None, "scale": scale, "inputChannels": 3,
            "outputChannels": 3,
            "resources": [{"platform": "pytorch", "type": kind, "size": size, "sha256": sha256, "urls": urls}],
            "images": []}


@pytest.fixture
def db(tmp_path, server, monkeypatch):
    """A four-model index on ``server``, the weights home in tmp_path, and the tiny SwinIR's bytes."""
    home = tmp_path / "home"
    monkeypatch.setenv("SWINIR_APP_HOME", str(home))
    monkeypatch.setenv(openmodeldb.URL_ENV, server.url)
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path / "weights")
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.0)
    torch.manual_seed(0)
    net = build_network(TINY).eval()
    torch.save({"params": net.state_dict()}, tmp_path / "tiny.pth")
    body = (tmp_path / "tiny.pth").read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    server.routes["/files/2x-Tiny.pth"] = body
    server.routes["/files/video.pth"] = body
    index = {
        "2x-Tiny": model_json("Tiny", "swinir", 2, [server.url + "/files/2x-Tiny.pth"], sha256=digest,
                              size=len(body), tags=("photo", "restoration"),
                              description="**Sharp** photos, see [the page](https://example.com). More text."),
        "2x-WrongHash": model_json("WrongHash", "swinir", 2, [server.url + "/files/2x-Tiny.pth"], sha256="0" * 64,
                                   size=len(body), tags=("anime",)),
        "4x-OnDrive": model_json("OnDrive", "swinir", 4, [DRIVE], sha256="1" * 64, size=123, tags=("anime",)),
        "2x-Video": model_json("VideoThing", "sofvsr", 2, [server.url + "/files/video.pth"], sha256=digest,
                               size=len(body), tags=("video",), description="Anime video frames."),
    }
    server.routes[INDEX] = json.dumps(index).encode()
    return SimpleNamespace(home=home, folder=home / "openmodeldb", net=net, body=body, server=server)


def test_search_fetches_the_index_once_and_finds_by_name_tag_and_description(db, capsys):
    assert swinir_app(["models", "--search", "ANIME"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["id", "arch", "scale", "licence", "runs", "description"]
    found = {line.split()[0]: line.split() for line in lines[1:] if line.strip() and not line.startswith(("use", "3"))}
    assert list(found) == ["2x-WrongHash", "4x-OnDrive", "2x-Video"]  # tag or description; runs here first
    assert found["2x-Video"][1:5] == ["sofvsr", "x2", "CC-BY-4.0", "no"]
    assert found["4x-OnDrive"][1:5] == ["SwinIR", "x4", "CC-BY-4.0", "yes"]
    assert "3 of 4 OpenModelDB models match 'ANIME'" in out
    assert swinir_app(["models", "--search", "sharp photos"]) == 0  # every word, in the description
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["2x-Tiny", "SwinIR", "x2", "CC-BY-4.0", "yes", "Sharp", "photos,", "see",
                                          "the", "page."]
    assert swinir_app(["models", "--search", "someone tiny"]) == 0  # the author and the name
    assert "1 of 4" in capsys.readouterr().out
    assert db.server.hits == [INDEX]  # fetched once, then read from the cache
    assert (db.folder / "index.json").is_file()
    assert swinir_app(["models", "--refresh"]) == 0
    assert "4 models, fetched" in capsys.readouterr().out and db.server.hits == [INDEX, INDEX]


def test_a_model_downloads_once_with_its_sha256_checked_then_works_offline(db, tmp_path, capsys):
    model = load_model("openmodeldb:2x-Tiny")
    assert (db.folder / "2x-Tiny.pth").read_bytes() == db.body
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(model(x), db.net(x))
    assert db.server.hits == [INDEX, "/files/2x-Tiny.pth"]
    db.server.routes.clear()  # offline from here on
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code = swinir_app(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model",
                       "openmodeldb:2x-tiny", "--device", "cpu", "--precision", "fp32"])  # any case
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "a.png").size == (16, 16)
    assert len(db.server.hits) == 2  # no request made
    # Listed with what runs here, before anything that does not; described with its licence.
    assert swinir_app(["models"]) == 0
    out = capsys.readouterr().out
    here, later = out.split("\n\n")[:2]
    assert "openmodeldb:2x-Tiny" in here and "openmodeldb" not in later
    row = next(line for line in here.splitlines() if line.startswith("openmodeldb:2x-Tiny")).split()
    assert row[1:6] == ["sr", "x2", "-", "cached", "SwinIR"] and " ".join(row[6:]) == "Sharp photos, see the page."
    assert swinir_app(["models", "--describe", "openmodeldb:2x-Tiny"]) == 0
    described = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert described["architecture"].strip() == "SwinIR" and described["scale"].strip() == "x2"
    assert described["licence"].strip().startswith("CC-BY-4.0")
    assert described["channels"].strip() == "3 in, 3 out"
    n = sum(p.numel() for p in db.net.parameters())
    assert described["parameters"].strip().endswith(f"({n:,})")


def test_a_wrong_sha256_is_refused_in_one_line_and_nothing_is_kept(db):
    with pytest.raises(ModelLoadError) as e:
        load_model("openmodeldb:2x-WrongHash")
    message = str(e.value)
    assert "\n" not in message and "sha256" in message and "nothing was cached" in message
    assert sorted(p.name for p in db.folder.iterdir()) == ["index.json"]


def test_a_page_link_says_where_to_download_the_file_and_where_to_put_it(db, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code = swinir_app(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model",
                       "openmodeldb:4x-OnDrive"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]  # the rest: the index's progress bar
    assert f"4x-OnDrive: download 4x-OnDrive.pth from {DRIVE} and put it in {db.folder}" in line
    assert db.server.hits == [INDEX]


def test_an_architecture_that_does_not_run_here_is_refused_before_any_download(db):
    with pytest.raises(ModelLoadError) as e:
        load_model("openmodeldb:2x-Video")
    assert str(e.value).startswith("2x-Video: its architecture sofvsr does not run here")
    assert "nothing was downloaded" in str(e.value)
    assert db.server.hits == [INDEX] and sorted(p.name for p in db.folder.iterdir()) == ["index.json"]


def test_an_unknown_id_is_named_with_the_close_ones(db):
    with pytest.raises(ModelLoadError) as e:
        load_model("openmodeldb:2x-Tinny")
    assert "'2x-Tinny' is not in the OpenModelDB index; did you mean 2x-Tiny?" in str(e.value)
    assert db.server.hits == [INDEX, INDEX]  # a cached index was fetched again once: the model may be newer
    assert zoo.unknown_spec("openmodeldb:2x-Tinny").startswith("'2x-Tinny' is not in")  # offline
    assert zoo.unknown_spec("openmodeldb:2x-Tiny") is None and len(db.server.hits) == 2


def test_direct_links_and_pages():
    direct = openmodeldb.direct_url
    release = "https://github.com/a/b/releases/download/v1/4x-A.pth"
    assert direct(release) == release
    assert direct("https://github.com/a/b/blob/main/m/4x-A.pth") == "https://github.com/a/b/raw/main/m/4x-A.pth"
    assert direct("https://github.com/a/b/releases/tag/v1") is None  # a release page
    hf = "https://huggingface.co/u/r/resolve/main/4x-A.safetensors?download=true"
    assert direct(hf) == hf
    assert direct("https://huggingface.co/u/r/blob/main/x.onnx") == "https://huggingface.co/u/r/resolve/main/x.onnx"
    oracle = "https://objectstorage.us-phoenix-1.oraclecloud.com/n/x/b/open-modeldb-files/o/16x-ESRGAN.pth"
    assert direct(oracle) == oracle
    for page in (DRIVE, "https://mega.nz/file/9INF#Kl", "https://1drv.ms/u/s!Aip", "https://www.dropbox.com/s/5/K.pth",
                 "https://www.mediafire.com/file/g/x.pth/file", "https://u.pcloud.link/publink/show?code=X",
                 "ftp://example.com/x.pth", "https://example.com/page"):
        assert direct(page) is None, page


def test_the_architectures_of_the_issue_map_to_spandrel_and_others_do_not():
    pytest.importorskip("spandrel")
    for arch in ("esrgan", "compact", "span", "realplksr", "realplksr-dysample", "omnisr", "safmn", "dat", "rgt",
                 "atd", "drct", "mosr", "hat", "swinir"):
        assert openmodeldb.runs_here(arch) and openmodeldb.spandrel_id(arch) is not None, arch
    for arch in ("srformer", "sofvsr", "cain", "rife", "ludvae"):
        assert not openmodeldb.runs_here(arch), arch


def test_an_unknown_id_offline_is_still_named_from_the_cached_index(db):
    load_model("openmodeldb:2x-Tiny")
    db.server.routes.clear()  # offline: the newer index cannot be had
    with pytest.raises(ModelLoadError) as e:
        load_model("openmodeldb:2x-Tinny")
    assert str(e.value).startswith("'2x-Tinny' is not in the OpenModelDB index; did you mean 2x-Tiny?")
    assert "fetching a newer one failed" in str(e.value)
