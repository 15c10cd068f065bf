"""Detector parameters from a TOML file (`posguard score --config`), validated, and their documented table."""

from __future__ import annotations

import inspect
import math
import re
import tomllib
from pathlib import Path

__all__ = ["ConfigError", "load_config", "parameters", "parameters_markdown"]


class ConfigError(ValueError):
    """A detector configuration file names an unknown detector or parameter, or gives a bad value."""

    exit_code = 2


def _documented(cls: type) -> dict[str, str]:
    """Parameter name -> one-line description, from the class's numpydoc "Parameters" section."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S[^\n]*\n-+\n|\Z)", doc, flags=re.S | re.M)
    out: dict[str, str] = {}
    if not match:
        return out
    current = None
    for line in match.group(1).splitlines():
        head = re.match(r"^(\w+(?:, \w+)*) :", line)
        if head:
            current = head.group(1).split(", ")
            for name in current:
                out[name] = ""
        elif current and line.strip():
            for name in current:
                out[name] = (out[name] + " " + line.strip()).strip()
    return out


def parameters(registry: dict) -> list[dict]:
    """Every detector's constructor parameters: detector, name, default, description (from its docstring)."""
    rows = []
    for name in registry:
        cls = registry[name]
        docs = _documented(cls)
        for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            rows.append({"detector": name, "name": param.name, "default": param.default,
                         "description": docs.get(param.name, "")})
    return rows


def parameters_markdown(registry: dict) -> str:
    """The README's table of detector parameters (generated, so that it cannot drift from the code)."""
    lines = ["| section | parameter | default | meaning |", "| --- | --- | --- | --- |"]
    for row in parameters(registry):
        default = "none" if row["default"] is None else repr(row["default"])
        text = row["description"].replace("|", "\\|")
        lines.append(f"| `[{row['detector']}]` | `{row['name']}` | `{default}` | {text} |")
    return "\n".join(lines) + "\n"


def _check_value(where: str, value, default):
    """``value`` if it has the default's type (an int where a float is expected is fine), else ConfigError."""
    if default is None or isinstance(default, dict):
        if default is not None and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (tuple, list)):
        ok = isinstance(value, list)
        value = type(default)(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: expected {type(default).__name__} like {default!r}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and default >= 0 and value < 0:
        raise ConfigError(f"{where}: must not be negative, got {value!r}")
    return value


def load_config(path: str | Path, registry: dict) -> dict[str, dict]:
    """Per-detector parameters from a TOML file: one table per detector (``[skimming]``, ``[cloned]``, ...).

    Every key is checked against the detector's constructor (unknown keys and wrong types are refused) and the
    detector is built once with the values, so that its own checks run before any scoring.

    Raises
    ------
    ConfigError
        Naming the file, the table and the key (exit status 2 on the command line).

    Example
    -------
    >>> load_config("detectors.toml", DETECTORS)        # doctest: +SKIP
    {'skimming': {'exposure_days': 30.0}}
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    out: dict[str, dict] = {}
    for section, values in data.items():
        if section not in registry:
            raise ConfigError(f"{path}: unknown detector [{section}]; the detectors are {', '.join(registry)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}])")
        cls = registry[section]
        defaults = {p.name: p.default for p in list(inspect.signature(cls.__init__).parameters.values())[1:]}
        checked = {}
        for key, value in values.items():
            if key not in defaults:
                raise ConfigError(f"{path}: [{section}] has no parameter {key!r}; it has {', '.join(defaults)}")
            checked[key] = _check_value(f"{path}: [{section}] {key}", value, defaults[key])
        try:
            detector = cls(**checked)
            if hasattr(detector, "check_params"):
                detector.check_params()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: [{section}]: {exc}") from None
        out[section] = checked
    return out
