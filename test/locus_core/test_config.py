from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from locus_core.config import Override, config_to_dict, load_config, merge, parse_overrides, save_config
from locus_core.errors import ConfigError, LocusError


@dataclass(frozen=True)
class Inner:
    radius: float = 0.2
    sizes: tuple[int, ...] = (256, 320)


@dataclass(frozen=True)
class Outer:
    name: str = "xfeat"
    steps: int = 10
    mode: Literal["a", "b"] = "a"
    verbose: bool = False
    weights: Path | None = None
    frame: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\ninner:\n  radius: 0.6\n")
    config = load_config(Outer, path, ["steps=30", "inner.sizes=[128, 160]", "weights=/w.pt"])
    assert config == Outer(steps=30, weights=Path("/w.pt"), inner=Inner(radius=0.6, sizes=(128, 160)))


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    config = Outer(name="dino", mode="b", verbose=True, inner=Inner(sizes=(1, 2, 3)))
    save_config(config, tmp_path / "config.yaml")
    assert load_config(Outer, tmp_path / "config.yaml") == config


def test_a_failed_save_keeps_the_previous_config_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_config(Outer(name="first"), tmp_path / "config.yaml")

    def full_disk(self: Path, text: str) -> int:  # the disk fills up halfway through
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_config(Outer(name="second"), tmp_path / "config.yaml")
    monkeypatch.undo()
    assert load_config(Outer, tmp_path / "config.yaml").name == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


@given(steps=st.integers(0, 10**6), radius=st.floats(0.01, 100.0))
def test_dict_round_trip(steps: int, radius: float) -> None:
    config = Outer(steps=steps, inner=Inner(radius=radius))
    assert load_config(Outer, None, config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stepz=3", "unknown key.*stepz.*valid keys"),
        ("steps=many", "steps: expected int"),
        ("mode=c", "mode: 'c' is not one of"),
        ("verbose=maybe", "verbose: expected true or false"),
        ("inner.sizes=[1.5]", "inner.sizes: expected an integer"),
        ("steps=.inf", r"steps: expected int, got inf"),  # int(inf) raises OverflowError
        ("novalue", "expected key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, [override])


def test_missing_and_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(Outer, broken)
    # a folder (tab completion stops at one) or a binary file: a traceback, not the file named
    with pytest.raises(ConfigError, match=f"{tmp_path}: cannot read the config file \\(Is a directory\\)"):
        load_config(Outer, tmp_path)
    broken.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="broken.yaml: not a text"):
        load_config(Outer, broken)


def readings(tree: dict[str, object]) -> dict[str, object]:
    """parse_overrides' tree with each value as YAML reads it (what a field that is not text gets)."""
    return {k: readings(v) if isinstance(v, dict) else v.yaml() if isinstance(v, Override) else v for k, v in tree.items()}


def test_parse_overrides_nests_keys() -> None:
    assert readings(parse_overrides(["a.b.c=1", "a.d=x"])) == {"a": {"b": {"c": 1}, "d": "x"}}
    # the later override wins, whichever is nested
    assert readings(parse_overrides(["a=1", "a.b=2"])) == {"a": {"b": 2}}
    assert readings(parse_overrides(["a.b=2", "a=1"])) == {"a": 1}
    with pytest.raises(ConfigError, match=r"overrides: steps: expected int, got \{'x': 2\}"):
        load_config(Outer, None, ["steps=1", "steps.x=2"])
    assert load_config(Outer, None, ["weights=null", "inner=null", "inner.radius=0.5"]).inner == Inner(radius=0.5)


def test_colon_separated_numbers_stay_strings(tmp_path: Path) -> None:
    # YAML 1.1 reads 8:15 as the base-60 integer 495 (and 1:30.5 as 90.5): a frame range would be lost.
    path = tmp_path / "c.yaml"
    path.write_text("name: 8:15\ninner:\n  radius: 1:30.5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: inner.radius: expected float, got '1:30.5'"):
        load_config(Outer, path)
    path.write_text("name: 8:15\nsteps: 0x10\ninner:\n  radius: 1_0.5\n")
    assert load_config(Outer, path) == Outer(name="8:15", steps=16, inner=Inner(radius=10.5))
    assert readings(parse_overrides(["frames=8:15", "a=600:1000:4", "b=[0.1, .inf]", "c=017", "d=yes", "e=~"])) == {
        "frames": "8:15", "a": "600:1000:4", "b": [0.1, float("inf")], "c": 15, "d": True, "e": None}


class CheckedError(LocusError):
    """A subsystem's error, raised by its own config."""


@dataclass(frozen=True)
class Checked:
    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise CheckedError(f"steps: must be at least 1, got {self.steps}")


def test_values_the_config_refuses_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("steps: 0\n")
    with pytest.raises(CheckedError, match=r"my.yaml: steps: must be at least 1, got 0") as raised:
        load_config(Checked, path)
    assert isinstance(raised.value.__cause__, CheckedError)
    with pytest.raises(CheckedError, match=r"my.yaml \+ overrides: steps: must be at least 1, got -2"):
        load_config(Checked, path, ["steps=-2"])


def test_keys_yaml_reads_as_bools_or_numbers_are_named(tmp_path: Path) -> None:
    # `no:` is the bool False and `1:` the integer 1 to YAML: the message named neither, it crashed
    # with a TypeError comparing them with the string keys.
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\nno: 2\n1: x\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key\(s\) 1, False for Outer \(YAML reads bare yes/no"):
        load_config(Outer, path)
    path.write_text("inner:\n  on: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) inner.True for Inner"):
        load_config(Outer, path)


@pytest.mark.parametrize("value", ["[1, 2", "*.png", "@home", "!x", "a: b: c", "\tx"])
def test_an_override_that_is_not_yaml_is_named(value: str) -> None:
    # each was a yaml ScannerError/ParserError/... traceback that named neither the flag nor the key
    with pytest.raises(ConfigError, match=rf"override {re.escape(repr('inner.sizes=' + value))}: not valid YAML \(.+\); quote"):
        load_config(Outer, None, [f"inner.sizes={value}"])
    # a string field takes the text as typed, quoted as YAML or not
    assert load_config(Outer, None, [f"name={value}"]).name == value
    assert load_config(Outer, None, [f"name='{value}'"]).name == value


@pytest.mark.parametrize(
    "value", ["0123", "007", "1e3", "0x1F", "1_000", "0b11", "+1", "1.50", ".inf", ".nan", "yes", "no", "on", "off",
              "true", "null", "~", "", "8:15", "2024-01-02", "[a, b]", "a # b", "!x", "&a", "*.png"]
)
def test_a_string_field_keeps_the_override_as_typed(value: str) -> None:
    # YAML 1.1 read each before the field's type was known: camera_frame=0123 became "83", name=1e3
    # became "1000.0", no became False (then "expected a string"), null None.
    config = load_config(Outer, None, [f"name={value}", f"frame={value}", f"weights=w{value}"])
    assert (config.name, config.weights) == (value, Path(f"w{value}"))
    assert config.frame == (None if value in ("null", "~") else value)  # `str | None`: YAML's null is None


def test_an_optional_string_field_is_none_only_when_null_is_given() -> None:
    assert load_config(Outer, None, ["frame=null"]).frame is None
    assert load_config(Outer, None, ["frame=~", "weights=null"]) == Outer()
    assert load_config(Outer, None, ["frame=", "name="]) == Outer(name="", frame="")


def test_a_quoted_override_of_a_string_field_is_read_as_yaml() -> None:
    # the escape hatch the YAML error message names, and what `locus eval --frames` passes (repr())
    assert load_config(Outer, None, ["name='0123'", "frame=\"8:15\""]) == Outer(name="0123", frame="8:15")
    assert load_config(Outer, None, ["name='it''s'"]).name == "it's"
    assert load_config(Outer, None, ["name='a' 'b'"]).name == "'a' 'b'"  # not one quoted scalar: as typed


@pytest.mark.parametrize(
    ("override", "expected"),
    [("steps=0x10", {"steps": 16}), ("steps=1_000", {"steps": 1000}), ("steps=017", {"steps": 15}),
     ("verbose=on", {"verbose": True}), ("verbose=no", {"verbose": False}),
     ("inner.radius=.inf", {"inner": Inner(radius=float("inf"))}), ("inner.radius=1e3", {"inner": Inner(radius=1000.0)}),
     ("inner.sizes=[0x10, 1_0]", {"inner": Inner(sizes=(16, 10))}), ("inner.sizes=7", {"inner": Inner(sizes=(7,))})],
)
def test_fields_that_are_not_text_still_read_the_override_as_yaml(override: str, expected: dict[str, object]) -> None:
    assert load_config(Outer, None, [override]) == Outer(**expected)


def test_an_override_mapping_merges_into_the_file_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  sizes: [1]\n")
    assert load_config(Outer, path, ["inner={radius: 0.5}"]).inner == Inner(radius=0.5, sizes=(1,))
    assert load_config(Outer, path, ["inner={radius: 0.5}", "inner.sizes=[2]"]).inner == Inner(radius=0.5, sizes=(2,))


def test_parsed_overrides_merged_with_plain_values_keep_the_text() -> None:
    # `locus bag eval` merges parse_overrides() with its flags' values and passes the mapping
    overrides = merge(parse_overrides(["name=0123", "frame=no", "steps=0x10"]), {"inner": {"radius": 2.0}})
    assert load_config(Outer, None, overrides) == Outer(name="0123", frame="no", steps=16, inner=Inner(radius=2.0))


@dataclass(frozen=True)
class Source:
    path: str = ""
    frames: str | None = None


@dataclass(frozen=True)
class WithOptional:
    val: Source | None = None


def test_a_string_field_of_an_optional_section_keeps_the_override_as_typed() -> None:
    # TrainConfig's data.val is `SourceConfig | None`: its overrides were read as YAML before the
    # section's type was known (data.val.path=no: "expected a string, got False"; frames=0123: "83")
    config = load_config(WithOptional, None, ["val.path=no", "val.frames=0123"])
    assert config.val == Source(path="no", frames="0123")
    assert load_config(WithOptional, None, ["val=null"]).val is None
    assert load_config(WithOptional, None, ["val={path: x}"]).val == Source(path="x")


@given(value=st.text())
def test_any_text_given_to_a_string_field_round_trips(value: str) -> None:
    assume(not (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""))  # quoted: read as YAML
    overrides = parse_overrides([f"name={value}", f"inner.sizes=[3]"])
    assume(not isinstance(overrides["name"], dict))  # `a: b`, `{a: 1}`: a YAML mapping merges as one
    assert load_config(Outer, None, overrides).name == value


def test_a_yaml_syntax_error_is_one_line_with_the_file_line_and_column(tmp_path: Path) -> None:
    # PyYAML's message spans five lines and names "<unicode string>", not the file
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\ninner:\n\tradius: 0.6\n")  # a tab indent
    with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML at line 3, column 1: while scanning for the next token, found character '\\t'") as raised:
        load_config(Outer, path)
    assert "\n" not in str(raised.value) and "unicode string" not in str(raised.value)


def test_a_key_given_twice_is_named_with_its_line(tmp_path: Path) -> None:
    # PyYAML keeps the last: a second `inner:` section silently put every key of the first back to
    # its default
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  radius: 0.6\nsteps: 3\ninner:\n  sizes: [1]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML at line 4, column 1: duplicate key 'inner'"):
        load_config(Outer, path)
    path.write_text("inner:\n  radius: 0.6\n  radius: 0.7\n")
    with pytest.raises(ConfigError, match=r"line 3, column 3: duplicate key 'radius'"):
        load_config(Outer, path)
    # a merge key's values are overridden on purpose
    path.write_text("inner:\n  <<: {radius: 0.6, sizes: [1]}\n  radius: 0.7\n")
    assert load_config(Outer, path).inner == Inner(radius=0.7, sizes=(1,))


def test_a_utf8_config_reads_whatever_the_locale(tmp_path: Path) -> None:
    # read in the locale's encoding, a UTF-8 file was "not a text (UTF-8) file" under an ASCII locale
    # (and mis-decoded under a Latin-1 one)
    path = tmp_path / "c.yaml"
    path.write_bytes("name: café ☕\n".encode())
    code = f"from locus_core.config import read_yaml; print(ascii(read_yaml({str(path)!r})))"
    env = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == ascii({"name": "café ☕"}), out.stderr
