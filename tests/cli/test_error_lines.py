"""Expected CLI failures end in one `error:` line and exit 2 (no traceback, no pydantic dump)."""

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.cli.conftest import write_config
from tests.filesystem import read_only_folder

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


def test_cli_data_import_into_a_read_only_cache_exits_2_and_keeps_the_cache(
    config_file: Path, candle_csv: Path
) -> None:
    args = ["--config", str(config_file), "data", "import", str(candle_csv)]
    assert runner.invoke(app, args).exit_code == 0
    folder = config_file.parent / "cache" / "binance"
    (cached,) = folder.glob("*.parquet")
    before = cached.read_bytes()
    with read_only_folder(folder):
        result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert f"{folder}: cannot write the candle cache there" in line
    assert "Traceback" not in result.output
    assert cached.read_bytes() == before
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_cli_data_import_with_a_file_in_place_of_the_cache_folder_exits_2(
    tmp_path: Path, candle_csv: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where data.cache_dir's parent should be\n")
    config = write_config(tmp_path, data={"cache_dir": str(blocker / "cache")})
    result = runner.invoke(app, ["--config", str(config), "data", "import", str(candle_csv)])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "cannot write the candle cache there (Not a directory)" in line
    assert "Traceback" not in result.output


def _break_registry(root: Path) -> None:
    """Two model folders whose manifests cannot be read: truncated JSON, wrong schema."""
    for name, text in (
        ("BTC_USDT-1h-logreg-20240101T0000Z", '{"model_id": '),
        ("BTC_USDT-1h-logreg-20240102T0000Z", '{"model_id": "x", "symbol": 3}'),
    ):
        (root / name).mkdir(parents=True)
        (root / name / "manifest.json").write_text(text, encoding="utf-8")


def test_cli_models_list_shows_corrupt_manifests_as_broken(config_file: Path) -> None:
    _break_registry(config_file.parent / "models")
    result = runner.invoke(app, ["--config", str(config_file), "models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "BROKEN BTC_USDT-1h-logreg-20240101T0000Z: manifest.json: Invalid JSON: EOF while "
        "parsing a value at line 1 column 13"
    ) in lines
    assert (
        "BROKEN BTC_USDT-1h-logreg-20240102T0000Z: manifest.json: exchange: Field required "
        "(+14 more)"
    ) in lines
    assert not any(line.startswith("No models in") for line in lines)


def test_cli_models_show_corrupt_manifest_is_one_error_line(config_file: Path) -> None:
    _break_registry(config_file.parent / "models")
    args = ["--config", str(config_file), "models", "show", "BTC_USDT-1h-logreg-20240102T0000Z"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    (line,) = error_lines(result.output)
    assert "manifest.json is unreadable or corrupt (exchange: Field required (+14 more))" in line
    assert "validation errors" not in result.output
    assert "errors.pydantic.dev" not in result.output
