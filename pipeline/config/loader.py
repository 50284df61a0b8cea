"""The strict loader: a parsed params mapping -> frozen dataclasses, refusing unknown keys,
missing keys, wrong types and out-of-range numbers with a `ConfigError` that names the key
and what is allowed. Generic over the dataclasses (the schema lives in `schema.py`)."""
from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml

from pipeline.runtime.errors import UserInputError


class ConfigError(UserInputError, ValueError):
    """params.yaml is not valid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric param, checked when params.yaml is loaded: `lo <= value <= hi`,
    with either end open (strict) or absent."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, value: float) -> bool:
        above = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        below = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return above and below

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'greater than' if self.lo_open else 'at least'} {self.lo:g}"
        return (f"in {'(' if self.lo_open else '['}{self.lo:g}, "
                f"{self.hi:g}{')' if self.hi_open else ']'}")


# Every int and float field of the schema carries one of these (tests/config checks it).
Count = Annotated[int, Range(1)]                        # sizes, epochs, widths: >= 1
NonNegative = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, lo_open=True)]     # rates, temperatures: > 0
NonNegativeFloat = Annotated[float, Range(0)]            # loss weights, decay: >= 0
Fraction = Annotated[float, Range(0, 1, hi_open=True)]   # dropout, ratios, momenta: [0, 1)


def require(ok: bool, key: str, message: str) -> None:
    """A cross-key check of the schema: ConfigError naming `key` unless `ok`."""
    if not ok:
        raise ConfigError(f"params.yaml: '{key}' {message}")



def read_yaml(path: str | Path) -> object:
    """The parsed params file; ConfigError when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path.resolve()}")
    with path.open(encoding="utf-8") as fh:
        try:
            return yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def with_overrides(raw: dict, overrides: Mapping[str, object]) -> dict:
    """A deep copy of the params mapping `raw` with dotted keys (`train.lr`) set, as
    `dvc exp run -S` does. Not validated: pass the result to `pipeline.config.params_from_dict`, which names
    a misspelt key."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw


def build(cls: type, raw: object, where: str):
    """The dataclass `cls` from the mapping `raw` found at dotted key `where` ('' = top)."""
    section = where or "top level"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"params.yaml: '{where or 'params'}' must be a mapping, "
                          f"got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"params.yaml: unknown key '{_join(where, key)}' in section "
                              f"'{section}'{hint}; allowed keys: {', '.join(fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise ConfigError(f"params.yaml: missing key '{_join(where, missing[0])}' in section "
                          f"'{section}'; required keys: {', '.join(fields)}")
    values = {name: _convert(hints[name], raw[name], _join(where, name)) for name in fields}
    return cls(**values)


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _convert(tp, value: object, key: str):
    """Check `value` against the annotation `tp`; return it in its typed, immutable form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        converted = _convert(args[0], value, key)
        for bound in args[1:]:
            if not bound.holds(converted):
                raise ConfigError(f"params.yaml: '{key}' is {value!r}; it must be {bound}")
        return converted
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value not in allowed:
            raise ConfigError(f"params.yaml: '{key}' is {value!r}; allowed values: "
                              f"{', '.join(map(str, allowed))}")
        return tp(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"params.yaml: '{key}' must be a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Mapping:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"params.yaml: '{key}' must be a mapping, got {value!r}")
        return types.MappingProxyType({
            _convert(args[0], k, f"{key} (key)"): _convert(args[1], v, f"{key}.{k}")
            for k, v in value.items()})
    return _scalar(tp, value, key)


def _scalar(tp: type, value: object, key: str):
    # bool is a subclass of int in Python; `user_k: true` must not pass as 1.
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported annotation {tp!r} for '{key}'")
    if not ok:
        raise ConfigError(f"params.yaml: '{key}' must be of type {tp.__name__}, "
                          f"got {value!r} ({type(value).__name__})")
    return tp(value)
