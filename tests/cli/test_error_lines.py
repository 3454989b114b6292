"""Expected CLI failures end in one `error:` line and exit 2 (no traceback, no pydantic dump)."""

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def error_lines(output: str) -> list[str]:
    """The `error:` lines of a command's output."""
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_cli_config_seed_as_text_exits_2_with_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('ml:\n  seed: "42"\n')
    result = runner.invoke(app, ["--config", str(bad), "data", "info"])
    assert result.exit_code == 2
    (line,) = error_lines(result.output)
    assert "ml.seed: expected an integer, got text '42'" in line
    assert "Traceback" not in result.output
