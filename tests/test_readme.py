"""Every code block of every Markdown page runs as written, in a sandbox folder that holds the files it names.

The pages are the README, the root pages (CONTRIBUTING.md, SECURITY.md, ...) and the MkDocs site under
docs/ (model cards included). A block that cannot run here is marked on the line before it with
``<!-- readme-test: skip (reason) -->`` (or ``<!-- docs-test: skip (reason) -->``); it is reported as
skipped with that reason. Zoo models get random weights in the official key layout in a private weights
cache, so nothing is downloaded. The pages' own rules (README size, navigation, copies) are checked too.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import REPO, photo
from swinir_app import SwinIR, zoo

TESTSETS = REPO.parent / "shared" / "testsets"
BLOCK = re.compile(r"(?:<!-- (?:readme|docs)-test: skip \((?P<skip>.*?)\) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)\n```",
                   re.S)


def markdown_pages():
    """README.md first, then the other root pages, then the site's pages: paths relative to the repository."""
    root = sorted(p.name for p in REPO.glob("*.md") if p.name != "README.md")
    site = sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))
    return ["README.md", *root, *site]


def readme_blocks():
    for page in markdown_pages():
        text = (REPO / page).read_text()
        for m in BLOCK.finditer(text):
            line = text[:m.start("lang")].count("\n") + 1
            yield pytest.param(page, m.group("lang"), m.group("body"), m.group("skip"),
                               id=f"{page}:L{line}-{m.group('lang') or 'text'}")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, trained_x2):
    """A working folder with the photos, folders and models the README's examples name."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    small = np.ascontiguousarray(photo("chelsea")[60:84, 120:152])  # 24 x 32: official models run in a blink
    for folder in ("photos", "photos/trip", "noisy", "scans"):
        (work / folder).mkdir(parents=True)
        Image.fromarray(small).save(work / folder / "a.png")
    Image.fromarray(small).save(work / "photo.png")
    Image.fromarray(small).save(work / "huge.tif")
    Image.fromarray(small).save(work / "photo.jpg")
    from helpers import moving_frames, write_animated, write_video
    write_video(work / "clip.mp4", n=3)  # a few frames: the block runs five commands
    write_animated(work / "anim.gif", moving_frames())
    torch.save({"params": trained_x2.state_dict()}, work / "my.pth")
    (work / "experiments" / "my_run" / "models").mkdir(parents=True)
    torch.save({"params": trained_x2.state_dict(), "params_ema": trained_x2.state_dict()},
               work / "experiments" / "my_run" / "models" / "net_g_100.pth")
    if TESTSETS.is_dir():
        (root / "shared").symlink_to(REPO.parent / "shared")  # ../shared/testsets, as from the repository
    home = root / "weights"
    home.mkdir()
    return work, home


def official_weights(home: Path, body: str) -> None:
    """Random weights, in the official layout and file name, for every zoo model ``body`` names."""
    for name in set(re.findall(r"[\"' ]([a-z]+(?:-[a-z0-9]+)+)[\"' \n]", body + "\n")):
        entry = zoo.ZOO.get(name)
        if entry is None or entry.url is None or (home / entry.filename).exists():
            continue
        torch.manual_seed(0)
        torch.save({"params": SwinIR(entry.config).state_dict()}, home / entry.filename)


@pytest.mark.slow
@pytest.mark.parametrize("page, lang, body, skip", readme_blocks())
def test_readme_code_block(page, lang, body, skip, sandbox, monkeypatch):
    if skip:
        pytest.skip(skip)
    work, home = sandbox
    if "../shared/testsets" in body and not TESTSETS.is_dir():
        pytest.skip("the benchmark sets are not in ../shared/testsets")
    official_weights(home, body)
    monkeypatch.setenv("SWINIR_APP_HOME", str(home))
    monkeypatch.chdir(work)
    if lang == "python":
        exec(compile(body, page, "exec"), {"__name__": "readme"})
    elif lang == "bash":
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   no_proxy="*", http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
        r = subprocess.run(["bash", "-e", "-c", body.replace("python ", f"{sys.executable} ")], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr
    elif lang == "yaml":
        # An options fragment: merged into the shipped x4 options, it must still be valid options.
        from swinir_app.options.reading import parse_options, parse_yaml

        raw = parse_yaml((REPO / "options" / "x4.yml").read_text(), "options/x4.yml")
        for section, values in yaml.safe_load(body).items():
            raw.setdefault(section, {}).update(values)
        parse_options(raw, source=f"{page} fragment")
    else:
        pytest.fail(f"a {lang or 'plain'} block that is not run must be marked: <!-- readme-test: skip (why) -->")
    shutil.rmtree(work / "out", ignore_errors=True)


def test_readme_is_short_and_starts_with_the_main_command():
    """Issue 30: at most 16 KB; the first bash block stays the command tests/test_bundled.py runs."""
    readme = (REPO / "README.md").read_bytes()
    assert len(readme) <= 16 * 1024, f"README.md is {len(readme)} bytes; move sections into docs/"
    first = re.search(r"```bash\n(.*?)\n```", readme.decode(), re.S).group(1)
    assert first.startswith("python3 -m venv .venv") and "swinir-app upscale" in first


def test_every_page_is_in_the_site_navigation():
    """mkdocs build --strict says so too; this keeps it in the test run, where MkDocs may be absent."""
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from pages(value)
        else:
            for item in entry:
                yield from pages(item)

    listed = set(pages(nav))
    on_disk = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert on_disk | {"options-reference.md"} == listed  # that one is generated (docs/hooks/)


def _options_reference():
    pytest.importorskip("mkdocs")
    sys.path.insert(0, str(REPO / "docs" / "hooks"))
    try:
        import options_reference
    finally:
        sys.path.remove(str(REPO / "docs" / "hooks"))
    return options_reference


def _schema_models():
    """Every pydantic model that swinir_app/options declares (the sections of an options file: schema.py, and
    dataset.py for ``datasets.<key>``)."""
    from pydantic import BaseModel

    from swinir_app.options import dataset, schema, values

    return [m for module in (schema, dataset, values) for m in vars(module).values()
            if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == module.__name__]


def test_every_option_of_the_schema_has_a_description():
    """The reference's description column comes from Field(description=...): a field without one is a hole."""
    models = _schema_models()
    assert {"Options", "DatasetOptions", "TrainOptions", "PathOptions", "MetricOptions"} <= {m.__name__ for m in models}
    missing = [f"{m.__name__}.{name}" for m in models for name, field in m.model_fields.items()
               if not (field.description or "").strip()]
    assert not missing, f"schema fields without Field(description=...): {', '.join(missing)}"


def test_options_reference_lists_every_key_of_the_schema():
    """The generated page (docs/hooks/options_reference.py) has a row for every key of every section: its
    full YAML path, its type, its default and its description."""
    options_reference = _options_reference()
    from swinir_app.options.schema import Options

    page = options_reference.render()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    sections = options_reference._sections(Options, "", {})
    assert set(sections) == {m for m in _schema_models() if m.model_fields}  # every section is on the page
    for model, paths in sections.items():
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            for path in paths:
                key = f"`{path}.{name}`" if path else f"`{name}`"
                row = next((r for r in rows if key in r.split(" | ")[0].replace("<br>", " ").split()), None)
                assert row is not None, f"no row for {key}"
                assert field.description, f"{key}: the schema gives no description"
                assert f" | {field.description.replace('|', chr(92) + '|')} |" in row, f"{key}: description missing"
                assert "required" in row if field.is_required() else "required" not in row.split(" | ")[2], key


def test_security_page_is_the_security_policy():
    """SECURITY.md (GitHub's place for it) and the site's Security page are one text, links aside."""
    root = (REPO / "SECURITY.md").read_text().replace("](docs/", "](")
    assert root == (REPO / "docs" / "security.md").read_text()
