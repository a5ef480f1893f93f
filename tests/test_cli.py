"""The console commands of ``[project.scripts]``: each names a callable of cswm_lib.cli that runs
its ``python -m`` twin's ``main`` and exits 0 as the installed wrapper calls it."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import tomllib

import pytest

from cswm_lib import cli
from cswm_lib.utils import project_root

SCRIPTS = tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_console_command_resolves_to_a_callable_that_runs_a_module_main():
    assert set(SCRIPTS) == set(cli.COMMANDS) == {
        "cswm-generate", "cswm-train", "cswm-eval", "cswm-a3c", "cswm-collect", "cswm-book"}
    for command, target in SCRIPTS.items():
        module, attr = target.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), command
        assert callable(importlib.import_module(cli.COMMANDS[command]).main), command


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_a_console_command_runs_like_the_installed_wrapper_and_exits_0_on_help(command):
    # what pip's console-script wrapper does: sys.exit(<module>.<attr>()) with argv[0] = the command
    module, attr = SCRIPTS[command].split(":")
    code = (f"import sys; from {module} import {attr}; sys.argv = [{command!r}, '--help']; "
            f"sys.exit({attr}())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_python_m_keeps_working_beside_the_console_command():
    out = subprocess.run([sys.executable, "-m", "cswm_lib.train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr


def test_a_console_command_returns_none_so_the_wrapper_exits_0(monkeypatch):
    # a main that returns a value (evaluate's rows, a3c's folder) would make sys.exit print it, exit 1
    calls = []
    monkeypatch.setitem(cli.COMMANDS, "cswm-eval", "tests_cli_fake")
    fake = type(sys)("tests_cli_fake")
    fake.main = lambda: calls.append(1) or ["a row"]
    monkeypatch.setitem(sys.modules, "tests_cli_fake", fake)
    assert cli.evaluate() is None and calls == [1]


def test_the_installed_distribution_has_the_console_commands():
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
             if ep.name.startswith("cswm-")}
    if not found:
        pytest.skip("the installed cswm-book predates its console commands: pip install -e . again")
    assert found == SCRIPTS
