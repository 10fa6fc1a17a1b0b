"""The package's layout, checked from its source: dependencies point one way, front ends are leaves,
only the web page imports gradio. Imports are read with ``ast``, the deferred ones included."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "swinir_app"

# Lower layers never import higher ones. A module's layer is that of its longest matching prefix. Modules on
# one layer may import each other, so test_no_import_cycles checks that they never do so both ways.
LAYERS = {
    "swinir_app.network": 0, "swinir_app.errors": 0,  # errors: UserError, the base of every one-line error
    "swinir_app.files": 1,  # atomic writes, stale .part cleanup, capped reads: imports nothing of the package
    "swinir_app.checkpoint": 1, "swinir_app.hf": 1, "swinir_app.images": 1, "swinir_app.distributed": 1,
    "swinir_app.frames": 1, "swinir_app.video": 1,
    "swinir_app.metadata": 1,  # EXIF, XMP and IPTC read and written again: images and frames carry them
    "swinir_app._basicsr": 1,
    "swinir_app.options": 1,
    "swinir_app.precision": 1,  # precision names, dtypes, auto and refusals: engine, training, benchmark, export
    "swinir_app.threads": 1,  # CPU threads: the allowed cores, --threads checked and applied, the busy-machine hint
    "swinir_app.resize": 1,  # the final size after the model and the Lanczos resize to it
    "swinir_app.onnx_runtime": 1,  # ONNX Runtime as a backend: the zoo loads .onnx files through it
    "swinir_app.spandrel_loader": 1,  # spandrel as a loader and network: the zoo's fallback for other architectures
    "swinir_app.mixing": 1,  # two models' weights mixed, (1 - w) x A + w x B: the zoo mixes what it loads
    "swinir_app.downloads": 1,  # one URL to one verified file, with retries: the zoo and OpenModelDB's index
    "swinir_app.seamless": 1,  # wrap-around margins for tileable textures: the engine pads with them
    "swinir_app.tiling": 1,  # the tile parser, tile starts and blending, TilePlan/PlanNote: the engine plans with them
    "swinir_app.zoo": 2,
    "swinir_app.openmodeldb": 2,  # the OpenModelDB index and openmodeldb:ID files: the zoo passes its download in
    "swinir_app.deploy": 3,  # the ONNX export: loads what it exports through the zoo
    "swinir_app.engine": 4,
    "swinir_app.protocol": 5,
    "swinir_app.train": 6, "swinir_app.cli": 6,
    "swinir_app.upscale": 7, "swinir_app.evaluate": 7, "swinir_app.convert": 7, "swinir_app.models": 7,
    "swinir_app.export": 7,
    "swinir_app.benchmark": 7, "swinir_app.train.cli": 7, "swinir_app.train.__main__": 7, "swinir_app.cli.main": 7,
    "swinir_app.webui": 7,
}
FRONT_ENDS = ("swinir_app.upscale", "swinir_app.evaluate", "swinir_app.convert", "swinir_app.models",
              "swinir_app.export", "swinir_app.benchmark", "swinir_app.train.cli", "swinir_app.train.__main__",
              "swinir_app.cli.main", "swinir_app.webui")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """Every module ``path`` imports (absolute names), wherever the import statement is."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module:
                found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # "from . import distributed"
    return {m for m in found if m}


def layer(module: str):
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def is_front_end(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FRONT_ENDS)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
EDGES = {m: {i for i in imports(p) if i.split(".")[0] in ("swinir_app", "gradio")} for m, p in MODULES.items()}


def known(target: str) -> bool:
    return target in MODULES or target.split(".")[0] == "gradio"


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer(m) is None and m != "swinir_app"] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    mine = layer(module)
    if mine is None:  # the package's own __init__: re-exports, lazily
        return
    for target in EDGES[module]:
        if not known(target) or target.startswith("gradio"):
            continue
        theirs = layer(target)
        assert theirs is not None and theirs <= mine, f"{module} (layer {mine}) imports {target} (layer {theirs})"


def test_the_network_imports_nothing_else_of_the_package():
    for module, targets in EDGES.items():
        if module.startswith("swinir_app.network"):
            outside = [t for t in targets if known(t) and t.startswith("swinir_app")
                       and not t.startswith("swinir_app.network")]
            assert outside == [], module


def test_the_errors_module_imports_nothing_of_the_package():
    assert [t for t in EDGES["swinir_app.errors"] if t.startswith("swinir_app")] == []


def cycles(edges):
    """Every import cycle among the package's modules, as the list of modules round it (first one repeated),
    found by a depth-first search over ``edges`` (the deferred imports included). A package's ``__init__``
    counts only for what it imports itself, not as a step every import of its submodules takes."""
    graph = {m: sorted(t for t in targets if t in edges and t != m) for m, targets in edges.items()}
    state, stack, found = {}, [], []  # state: 1 on the stack, 2 done

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_import_cycles():
    assert [" -> ".join(c) for c in cycles(EDGES)] == []


def test_the_cycle_check_finds_cycles():
    edges = {"a": {"b"}, "b": {"c", "gradio"}, "c": {"a"}, "d": {"a", "d"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    # the circle this layout once had: the base network's module importing a subclass's, deferred
    with_cycle = {**EDGES, "swinir_app.network.swinir": EDGES["swinir_app.network.swinir"] | {"swinir_app.network.hat"}}
    found = cycles(with_cycle)  # a cycle is reported from whichever of its modules the search reaches first
    assert any(c[0] == c[-1] and set(c) == {"swinir_app.network.hat", "swinir_app.network.swinir"} for c in found)


def test_a_protocol_submodule_loads_no_engine_or_zoo():
    """``protocol/__init__`` re-exports lazily: a DataLoader worker that imports ``protocol.degrade`` loads
    only what that module imports."""
    code = ("import sys, swinir_app.protocol.degrade\n"
            "print(sorted(m for m in ('swinir_app.engine', 'swinir_app.zoo', 'swinir_app.protocol.evaluation') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import swinir_app.protocol as protocol
    from swinir_app.protocol.evaluation import evaluate
    assert protocol.evaluate is evaluate and set(protocol.__all__) <= set(dir(protocol))


def test_nothing_imports_a_front_end():
    for module, targets in EDGES.items():
        for target in targets:
            if not (known(target) and is_front_end(target)):
                continue
            same_front_end = any(module.startswith(f) and target.startswith(f) for f in FRONT_ENDS)
            its_main = module.endswith(".__main__") and target.rsplit(".", 1)[0] == module.rsplit(".", 1)[0]
            assert same_front_end or its_main, f"{module} imports the front end {target}"


def test_only_the_web_page_imports_gradio():
    users = sorted(m for m, targets in EDGES.items() if any(t.split(".")[0] == "gradio" for t in targets))
    assert users == ["swinir_app.webui.page"]


def test_the_swinir_app_command_lists_every_front_end(capsys):
    from swinir_app.cli.main import COMMANDS, main
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)
    assert set(COMMANDS) == {"upscale", "evaluate", "train", "convert", "models", "benchmark", "web", "export"}
    assert main(["modles"]) == 2 and "did you mean models" in capsys.readouterr().err
    for name in COMMANDS:  # each command's usage names it as typed
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: swinir-app {name} ")
