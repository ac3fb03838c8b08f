"""The README's examples run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jscale import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    if not README.exists():
        pytest.skip("README.md not found next to the tests")
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_tour_runs():
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), {})


def test_cli_examples_run(capsys):
    commands = [
        line.split("#")[0].strip()
        for block in blocks("bash")
        for line in block.splitlines()
        if line.startswith("jscale ")
    ]
    assert commands
    for command in commands:
        argv = shlex.split(command)[1:]
        assert cli.main(argv) == 0, command
        capsys.readouterr()
