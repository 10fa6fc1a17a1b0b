"""``swinir-app COMMAND ...``: one entry point for every front end.

    swinir-app upscale photos/ -o out/       swinir-app evaluate --model M --gt DIR
    swinir-app train -opt options/x4.yml     swinir-app convert IN OUT.safetensors
    swinir-app models                        swinir-app benchmark
    swinir-app export MODEL OUT.onnx
    swinir-app web                           (python -m swinir_app.<command> works as well)
"""
from __future__ import annotations

import importlib
import sys
from typing import List, Optional

# command -> (module with main(argv), one line for --help)
COMMANDS = {
    "upscale": ("swinir_app.upscale", "restore images and folders of images (the batch CLI)"),
    "evaluate": ("swinir_app.evaluate", "score a model with the SwinIR paper's protocol"),
    "train": ("swinir_app.train.cli", "train from a BasicSR-style options file"),
    "convert": ("swinir_app.convert", "write any checkpoint as .safetensors with its config"),
    "export": ("swinir_app.export", "write a model as a verified ONNX graph"),
    "models": ("swinir_app.models", "list the model zoo and what is cached"),
    "benchmark": ("swinir_app.benchmark", "speed and memory against the official network, in one run"),
    "web": ("swinir_app.webui.cli", "the web upscaler (Gradio) on 127.0.0.1"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return ("usage: swinir-app COMMAND [options]   (swinir-app COMMAND --help for its options)\n\n"
            "SwinIR image restoration: super-resolution, denoising and JPEG repair.\n\ncommands:\n" + "\n".join(lines))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from .. import __version__
        print(f"swinir-app {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"error: unknown command {command!r}{hint} (swinir-app --help lists them)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    from .. import cli
    cli.command_name = sys.argv[0] = f"swinir-app {command}"
    try:
        return int(module.main(rest) or 0)
    finally:
        cli.command_name = None


if __name__ == "__main__":
    sys.exit(main())
