"""MkDocs hook: the options reference page, generated from the pydantic schema at every build.

Each section of ``swinir_app.options.schema.Options`` becomes a table of its keys (full YAML paths), types,
defaults and the field descriptions (``Field(description=...)``) that the schema declares, so the page
cannot drift from the options that ``swinir-app train`` and ``swinir-app evaluate`` accept.
"""
from __future__ import annotations

import inspect
import typing

from mkdocs.structure.files import File
from pydantic import BaseModel

PAGE = "options-reference.md"


def _type(t) -> str:
    """A short, readable name for an annotation: Annotated and validators dropped."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a) for a in inner)
        return f"{text} (optional)" if len(inner) < len(args) else text
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(_type(a) for a in args if a is not Ellipsis)}]"
    if origin is not None:
        return _type(args[0]) if args else str(origin)
    return getattr(t, "__name__", str(t)).replace("Options", " section") if inspect.isclass(t) else str(t)


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`" if field.default_factory in (dict, list) else "(section defaults)"
    value = field.default
    if isinstance(value, BaseModel):  # a section: its own defaults, but for keys the default sets
        given = value.model_dump(exclude_defaults=True)
        return f"`{{{', '.join(f'{k}: {v}' for k, v in given.items())}}}`" if given else "(section defaults)"
    return f"`{value!r}`"


def _sections(model, prefix, found):
    """{model: [its key paths]} for the model and every section model it nests, depth first: a model
    used at several keys (``{type: X, ...}`` sections) is one section with all its paths."""
    if model in found:
        found[model].append(prefix)
        return found
    found[model] = [prefix]
    for name, field in model.model_fields.items():
        for t in _flatten(field.annotation):
            if inspect.isclass(t) and hasattr(t, "model_fields"):
                key = f"{prefix}.{name}" if prefix else name
                if typing.get_origin(field.annotation) is dict or _is_dict(field.annotation):
                    key += ".<key>"
                _sections(t, key, found)
    return found


def _is_dict(t) -> bool:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is dict:
        return True
    return any(_is_dict(a) for a in args) if origin in (typing.Annotated, typing.Union) else False


def _flatten(t):
    yield t
    for a in typing.get_args(t):
        yield from _flatten(a)


def render() -> str:
    from swinir_app.options.schema import Options

    out = ["# Options reference", "",
           "The keys of a BasicSR-style options file (`swinir-app train -opt FILE`, `swinir-app evaluate "
           "-opt FILE`), generated from the options schema (`swinir_app/options/schema.py`) when the site is "
           "built, so it lists exactly what the code accepts. Any other key is refused in one line. See "
           "[Training](training.md) for how the shipped files use them.", ""]
    for model, paths in _sections(Options, "", {}).items():
        out += [", ".join(f"## `{p}`" if i == 0 else f"`{p}`" for i, p in enumerate(paths)) if paths[0]
                else "## Top level", ""]
        doc = inspect.getdoc(model)
        if doc and doc != inspect.getdoc(model.__mro__[1]):
            out += [doc.replace("\n", " "), ""]
        out += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = "<br>".join(f"`{p}.{name}`" if p else f"`{name}`" for p in paths)
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            kind = _type(field.annotation).replace("|", "\\|")
            out.append(f"| {key} | {kind} | {_default(field)} | {desc} |")
        out.append("")
    return "\n".join(out)


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=render()))
    return files
