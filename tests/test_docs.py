"""The docs keep up with the code: every CLI command, subcommand and option is documented in
README.md or docs/*.md, every config key in docs/configuration.md, and local links resolve."""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tray import config
from tray.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@functools.cache
def _all_docs() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command line a user can type: commands, nested commands and positional choices."""
    for name, sub in _subparsers(parser):
        words = (*prefix, name)
        yield words
        yield from _commands(sub, words)
        for action in sub._actions:
            if (
                not action.option_strings
                and action.choices
                and not isinstance(action, argparse._SubParsersAction)
            ):
                for choice in action.choices:
                    yield (*words, str(choice))


def _options(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    for name, sub in _subparsers(parser):
        words = (*prefix, name)
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    yield " ".join(words), option
        yield from _options(sub, words)


COMMANDS = sorted(set(_commands(build_parser())))
OPTIONS = sorted(set(_options(build_parser())))


def test_the_parser_has_commands() -> None:
    assert ("setup", "codex") in COMMANDS and ("autostart", "status") in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_is_documented(words: tuple[str, ...]) -> None:
    command = "codex-pool " + " ".join(words)
    assert re.search(re.escape(command) + r"(?![\w-])", _all_docs()), (
        f"`{command}` is not mentioned in README.md or docs/*.md"
    )


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=lambda v: str(v))
def test_every_option_is_documented(command: str, option: str) -> None:
    assert re.search(re.escape(option) + r"(?![\w-])", _all_docs()), (
        f"`codex-pool {command} {option}` is not mentioned in README.md or docs/*.md"
    )


def _config_keys() -> list[str]:
    return list(config.KEYS)


def test_every_config_key_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = []
    for key in _config_keys():
        table, _, leaf = key.rpartition(".")
        documented = f"`{key}`" in text or (bool(table) and f"[{table}]" in text and f"`{leaf}`" in text)
        if not documented:
            missing.append(key)
    assert missing == [], f"config keys missing from docs/configuration.md: {missing}"


def test_local_links_and_images_exist() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_readme_has_exactly_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```[^\n]*\n(.*?)```", section, re.DOTALL)
    assert [block.strip() for block in blocks] == ["./dev app", "./dev test"]
    all_blocks = re.findall(r"```[^\n]*\n(.*?)```", readme, re.DOTALL)
    assert len(all_blocks) == 2, "README.md's only code blocks are the two set-up commands"


def test_every_path_the_architecture_names_exists() -> None:
    """docs/architecture.md is the map a newcomer reads first: every ``tray/...`` and ``tests/...``
    path it names is there."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.-])((?:tray|tests)/[\w./-]*\w)", text))
    assert len(named) > 30
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
