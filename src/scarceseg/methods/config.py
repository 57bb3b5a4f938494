"""Method configs as pydantic models: one schema per registered method, unknown keys an error, read from
YAML or JSON (``--config FILE``).

A method's schema is its options (which channels, which preset, ...) plus every field of the paper config
dataclass it wraps, each optional: a field left out keeps the preset's value. :func:`config_model` builds
that schema from the dataclass, so the paper values stay where they are (with their comments naming the
paper section) and cannot drift from the schema.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from scarceseg.errors import InputError


class Options(BaseModel):
    """Base of every method config schema: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


def config_model(name: str, paper_config: type | None, **options: tuple[Any, Any]) -> type[Options]:
    """A pydantic schema: ``options`` (``name=(type, default)``) plus ``paper_config``'s fields as optional.

    Parameters
    ----------
    name : str
        Class name of the schema.
    paper_config : dataclass type or None
        Its fields become ``field: type | None = None`` (``None``: the preset's value).
    **options : (type, default)
    """
    fields: dict[str, tuple[Any, Any]] = {}
    if paper_config is not None:
        hints = typing.get_type_hints(paper_config)
        for f in dataclasses.fields(paper_config):
            if f.name in options:
                continue
            fields[f.name] = (hints[f.name] | None, None)
    fields.update(options)
    return create_model(name, __base__=Options, **fields)


def validate(schema: type[Options], values: dict | None, source: str | Path | None = None) -> Options:
    """``values`` checked against ``schema``; an :class:`InputError` naming ``source`` lists what is wrong."""
    try:
        return schema(**(values or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise InputError(source, f"bad config ({problems})") from None


def overrides(options: Options, paper_config: type) -> dict:
    """The paper-config fields that ``options`` sets (not ``None``)."""
    names = {f.name for f in dataclasses.fields(paper_config)}
    return {k: v for k, v in options.model_dump().items() if k in names and v is not None}


def apply(base, options: Options):
    """``base`` (a paper config dataclass instance) with the fields ``options`` sets; ValueError -> InputError."""
    try:
        return dataclasses.replace(base, **overrides(options, type(base)))
    except (TypeError, ValueError) as exc:
        raise InputError(None, f"bad config ({exc})") from None


def read_config_file(path: str | Path) -> dict:
    """A YAML (``.yaml``/``.yml``) or JSON file holding one mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise InputError(path, f"cannot parse the config ({str(exc)[:200]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "the config must be a mapping of keys to values")
    return data
