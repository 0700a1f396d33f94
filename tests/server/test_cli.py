"""The command line: help, tokens, and a LIVECART_* twin for every option."""
from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from livecart.server import auth
from livecart.server.cli import main


def test_every_option_has_a_livecart_env_twin() -> None:
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert isinstance(param.envvar, str) and param.envvar.startswith("LIVECART_"), (name, param.name)


def test_token_from_env_secret_verifies(monkeypatch) -> None:
    monkeypatch.setenv("LIVECART_JWT_SECRET", "s" * 40)
    result = CliRunner().invoke(main, ["token", "--sub", "alice", "--role", "customer"])
    assert result.exit_code == 0, result.output
    who = auth.verify("s" * 40, result.output.strip())
    assert (who.sub, who.role) == ("alice", "customer")


def test_generated_secret_is_shared_by_token_and_serve(tmp_path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["token", "--sub", "a", "--role", "admin", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0
    assert auth.verify(auth.load_or_create_secret(tmp_path), out.output.strip()).role == "admin"


def test_help_reads_well_from_the_installed_command() -> None:
    out = subprocess.run([sys.executable, "-m", "livecart.server.cli", "serve", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--port" in out and "LIVECART_PORT" in out and "--data-dir" in out


def test_bad_role_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["token", "--sub", "a", "--role", "wizard", "--jwt-secret", "x" * 40])
    assert result.exit_code != 0 and "wizard" in result.output
