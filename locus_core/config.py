"""Frozen dataclass configs: defaults in code, overridden by YAML, overridden by ``key=value`` flags.

Every component (dataset, model, trainer, map, localizer, ...) has one frozen dataclass. This module
loads, overrides, validates types of and saves them, so that the resolved config can be written next
to every checkpoint, map and report.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from locus_core.durable import atomic_write_text
from locus_core.errors import ConfigError, LocusError

C = TypeVar("C")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` without YAML 1.1's base-60 numbers: ``8:15`` (a frame range) stays a
    string instead of the integer 495; every other implicit type resolves as before. A key given
    twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last: a second `data:` section silently dropped every key of the first.
        # Checked before merge keys (<<) are flattened in, which a mapping overrides on purpose.
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


# PyYAML's int and float patterns, less their sexagesimal alternatives.
_NO_BASE_60 = {
    "tag:yaml.org,2002:int": re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
    ),
    "tag:yaml.org,2002:float": re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, _NO_BASE_60.get(tag, pattern)) for tag, pattern in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: PyYAML's own message spans lines, quotes the text and names "<unicode string>"."""
    words = ", ".join(filter(None, (getattr(exc, "context", None), getattr(exc, "problem", None))))
    return words or str(exc)


@dataclasses.dataclass(frozen=True)
class Override:
    """One ``key=value`` override's value as typed, read only once its field's type is known.

    YAML 1.1 reads ``0123`` as 83, ``1e3`` as 1000.0, ``no`` as False and ``null`` as None: right for
    a number or bool field, but a frame or topic named so lost its text, and on a command line the
    user cannot reasonably quote. So a text field (str, Path) takes ``text`` as typed and every other
    field its YAML reading, with today's checks.
    """

    key: str  # the dotted key, for messages
    text: str

    def yaml(self) -> Any:
        """The value as YAML reads it ("" when empty).

        Raises:
            ConfigError: naming the override, when ``text`` is not valid YAML.
        """
        try:
            return _load_yaml(self.text) if self.text else ""
        except yaml.YAMLError as exc:  # *.png, @home, [1, 2: a shell word, not the YAML meant
            raise ConfigError(f"override {self.key + '=' + self.text!r}: not valid YAML ({_yaml_problem(exc)}); "
                              f"quote a string: {self.key}='...'") from None

    def read(self, hint: Any) -> Any:
        """The value for a field declared as ``hint``."""
        members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        texts = [m for m in members if m is not type(None)]
        if not texts or not all(m in (str, Path) for m in texts):
            return self.yaml()
        if len(texts) < len(members) and self.text in ("null", "Null", "NULL", "~"):
            return None  # the only way to give an optional field None from a command line
        quoted = len(self.text) >= 2 and self.text[0] == self.text[-1] and self.text[0] in "'\""
        if quoted:  # the escape hatch the YAML error names, and `locus eval --frames` passes repr()
            try:
                value = _load_yaml(self.text)
            except yaml.YAMLError:
                return self.text  # 'a' 'b' is no quoted scalar: as typed
            return value if isinstance(value, str) else self.text
        return self.text


def _plain(value: Any) -> Any:
    """``value`` with its overrides read as YAML: under a field that is no config (Any, a dict) as before."""
    if isinstance(value, Override):
        return value.yaml()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (nested dataclasses, tuples as lists) that ``yaml.safe_dump`` accepts."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def config_from_dict(
    cls: type[C], data: Mapping[str, Any], *, source: str = "config", prefix: str = ""
) -> C:
    """Build ``cls`` from a mapping, checking keys and coercing values to the declared types.

    ``prefix`` is the dotted path of a nested config (``"inner."``), so errors name the full key.

    Raises:
        ConfigError: naming ``source`` and the key, for unknown keys and values of the wrong type.
        LocusError: the error ``cls`` itself raises for a value it refuses (e.g. ``EvaluationError``),
            of the same type, its message prefixed with ``source``.
    """
    if not isinstance(data, Mapping):
        where = f"{source}: {prefix.rstrip('.')}" if prefix else source
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    # str() the keys: YAML reads a key such as `no:` or `1:` as a bool or number, which neither sorts
    # among strings nor joins into the message.
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        quote = "" if all(isinstance(k, str) for k in data) else " (YAML reads bare yes/no/on/off, numbers as such)"
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(prefix + u for u in unknown)} for {cls.__name__}{quote}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {
        name: _coerce(hints[name], value, source, f"{prefix}{name}") for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except LocusError as exc:  # same type, so callers that catch a subsystem's errors still do
        raise type(exc)(f"{source}: {exc}") from exc


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    where = f"{source}: {key}"
    if isinstance(value, Override):
        value = value.read(hint)
    elif not (dataclasses.is_dataclass(hint)
              or origin in (typing.Union, types.UnionType) and any(dataclasses.is_dataclass(a) for a in args)):
        # a mapping of dotted overrides under a field that is no config; under an optional config
        # (``SourceConfig | None``) they are left for the config's own fields to read
        value = _plain(value)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, source=source, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source, key) for v in value)
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, source, key) for a, v in zip(args, value))
        return list(value) if origin is list else tuple(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = hint(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if hint is Path:
        return Path(value)
    return value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a": {"b": Override("a.b", "1")}, "c": Override("c", "[1, 2]")}``.

    Each value is kept as typed (an :class:`Override`) until :func:`config_from_dict` knows its
    field's type; one that YAML reads as a mapping (``inner={radius: 1}``) is that mapping, so that it
    merges into the config's section as a YAML file's would.
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r}: expected key=value")
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            # a later override wins, as a YAML mapping over a scalar does in merge(): after `a=1`,
            # `a.b=2` makes `a` a mapping (indexing the 1 was a TypeError traceback)
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        try:
            mapping = _load_yaml(raw)
        except yaml.YAMLError:
            mapping = None  # reported, if the field is not text, once its type is known
        node[leaf] = mapping if isinstance(mapping, dict) else Override(key, raw)
    return result


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = _load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:  # a directory, no permission: a traceback would not name the flag's file
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(
    cls: type[C], path: Path | None = None, overrides: list[str] | Mapping[str, Any] | None = None
) -> C:
    """Defaults of ``cls``, then the YAML file at ``path``, then ``overrides``: ``key=value`` strings, or a
    mapping of values (:func:`parse_overrides`' included)."""
    data: dict[str, Any] = config_to_dict(cls()) if _has_defaults(cls) else {}
    source = str(path) if path else cls.__name__
    if path is not None:
        data = merge(data, read_yaml(path))
    if overrides:
        extra = parse_overrides(list(overrides)) if not isinstance(overrides, Mapping) else overrides
        data = merge(data, extra)
        source += " + overrides"
    return config_from_dict(cls, data, source=source)


def save_config(config: Any, path: Path) -> None:
    """Write the resolved config as YAML (what was actually run, defaults included), whole or not at
    all: it describes the checkpoint or map beside it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _has_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    )
