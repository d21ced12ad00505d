from __future__ import annotations

import argparse
import subprocess
import sys

from locus_core.cli.main import COMMANDS, build_parser


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "locus_core.cli.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert name in out


def test_help_does_not_import_torch() -> None:
    # `locus --help` must answer at once, so subcommand modules keep heavy imports inside run().
    code = "import sys; from locus_core.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_every_command_parses_its_help() -> None:
    parser = build_parser()
    for name in COMMANDS:
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_benchmark_describes_itself_in_whole_sentences() -> None:
    # A module docstring's first paragraph wraps over lines: its first line alone stops mid-sentence.
    benchmarks = _subparsers(_subparsers(build_parser())["bench"])
    assert {"bag", "infer", "loss", "map", "node", "pipeline", "suite"} <= set(benchmarks)
    for name, parser in benchmarks.items():
        assert parser.description and parser.description.endswith("."), (name, parser.description)
        assert "\n" not in parser.description, (name, parser.description)


def test_help_texts_carry_no_markup() -> None:
    """Descriptions come from module docstrings: their ``literal`` marks read as noise in --help."""
    pending = [build_parser()]
    while pending:
        parser = pending.pop()
        assert "``" not in (parser.description or ""), parser.prog
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            pending += _subparsers(parser).values()
