"""The config file: `vcam start`'s options in TOML, so a service starts the way its user set it up.

`~/.config/sharpcam/config.toml` ($XDG_CONFIG_HOME honoured; `--config PATH` picks another)
holds any of the options of vcam/options.py, by the same names:

    source = "/dev/video0"
    strength = 0.7
    ema = 0.85
    tier = "default"

Precedence: command line > file > defaults. A key that is no option, or a value of the wrong
type, is one error naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

from vcam.errors import VcamError
from vcam.options import DEFAULTS, StartOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sharpcam" / "config.toml"


def _types() -> dict[str, tuple[type, ...]]:
    """Each option's accepted Python types (a float option takes a TOML integer too)."""
    hints = typing.get_type_hints(StartOptions)
    accepted: dict[str, tuple[type, ...]] = {}
    for f in dataclasses.fields(StartOptions):
        hint = hints[f.name]
        kinds = (
            [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
        )
        if float in kinds:
            kinds.append(int)
        accepted[f.name] = tuple(kinds)
    return accepted


def read(path: Path | None = None) -> dict[str, Any]:
    """The options the file sets; {} when the default file does not exist. A file named
    explicitly must exist."""
    explicit = path is not None
    path = path or default_path()
    if not path.is_file():
        if explicit:
            raise VcamError(f"config file {path} not found — create it or leave out --config")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise VcamError(f"{path} is not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VcamError(f"cannot read config file {path} ({exc})") from None
    accepted = _types()
    for key, value in data.items():
        if key not in accepted:
            raise VcamError(
                f"{path}: unknown key {key!r} — the keys are the options of `vcam start`: {', '.join(accepted)}"
            )
        kinds = accepted[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(_NAMES[k] for k in kinds if k is not int or float not in kinds)
            raise VcamError(f"{path}: {key} = {value!r} is not {wanted}")
    return data


def merge(cli: dict[str, Any], given: set[str], path: Path | None = None) -> tuple[StartOptions, dict[str, str]]:
    """The effective options and where each came from ('command line', the file, 'default'):
    `cli` holds every option's command-line value, `given` the names typed on the command line."""
    from_file = read(path)
    where = str(path or default_path())
    values, origin = {}, {}
    for f in dataclasses.fields(StartOptions):
        if f.name in given:
            values[f.name], origin[f.name] = cli[f.name], "command line"
        elif f.name in from_file:
            values[f.name], origin[f.name] = from_file[f.name], where
        else:
            values[f.name], origin[f.name] = getattr(DEFAULTS, f.name), "default"
    return StartOptions(**values), origin
