from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from core.settings import Settings, load_settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_repo_config_is_valid() -> None:
    settings = load_settings(REPO_CONFIG, environ={})
    assert settings.data.symbol == "BTC/USDT"


def test_load_settings_repo_config_documents_every_section() -> None:
    text = REPO_CONFIG.read_text(encoding="utf-8")
    for section in Settings.model_fields:
        if section != "secrets":
            assert f"\n{section}:" in "\n" + text, f"config.yaml lacks the {section} section"


def test_load_settings_none_gives_defaults() -> None:
    assert load_settings(None, environ={}) == Settings()


def test_load_settings_typo_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "ml:\n  walk_forwrd:\n    step_bars: 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert "ml.walk_forwrd: unknown key" in message
    assert "did you mean 'walk_forward'" in message


def test_load_settings_bad_value_names_dotted_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "data:\n  timeframe: 2h\n")
    with pytest.raises(ConfigError, match=r"data\.timeframe"):
        load_settings(path, environ={})


def test_load_settings_gap_must_cover_horizon(tmp_path: Path) -> None:
    path = _write(tmp_path, "ml:\n  labels: {horizon_bars: 3}\n  walk_forward: {gap_bars: 1}\n")
    with pytest.raises(ConfigError, match="gap_bars"):
        load_settings(path, environ={})


def test_load_settings_rejects_secrets_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "secrets:\n  api_key: hunter2\n")
    with pytest.raises(ConfigError, match="CRYPTOPRED_API_KEY"):
        load_settings(path, environ={})


def test_load_settings_reads_secrets_from_env(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "{}"), environ={"CRYPTOPRED_API_KEY": "s3cr3t"})
    assert settings.secrets.api_key is not None
    assert settings.secrets.api_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


def test_load_settings_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_load_settings_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "data: [unclosed\n"), environ={})


def test_load_settings_parses_durations(tmp_path: Path) -> None:
    path = _write(tmp_path, "bot:\n  max_model_age: 12h\n  retrain: {every: 7d}\n")
    settings = load_settings(path, environ={})
    assert settings.bot.max_model_age.total_seconds() == 12 * 3600
    assert settings.bot.retrain.every is not None
    assert settings.bot.retrain.every.days == 7


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.data.symbol = "ETH/USDT"  # type: ignore[misc]


def test_load_settings_db_url_from_env_overrides_file(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:pw@127.0.0.1:5432/db"
    settings = load_settings(_write(tmp_path, "{}"), environ={"CRYPTOPRED_DB_URL": url})
    assert settings.storage.db_url == url


def _leaf_keys(model: type, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            keys += _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_repo_config_lists_every_key_with_its_default() -> None:
    """config.yaml is the annotated reference: every key, at its default value."""
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    for dotted in _leaf_keys(Settings):
        if dotted.startswith("secrets."):
            continue
        node = raw
        for part in dotted.split("."):
            assert part in node, f"config.yaml lacks {dotted}"
            node = node[part]
    assert load_settings(REPO_CONFIG, environ={}) == Settings()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ml:\n  seed: true\n", "ml.seed: expected an integer, got bool true"),
        ('ml:\n  seed: "42"\n', "ml.seed: expected an integer, got text '42'"),
        ("ml:\n  seed: 42.5\n", "ml.seed: expected an integer, got float 42.5"),
        ('strategy:\n  cash: "1e4"\n', "strategy.cash: expected a number, got text '1e4'"),
        ("strategy:\n  cash: false\n", "strategy.cash: expected a number, got bool false"),
        ("ml:\n  tuning: {enabled: 1}\n", "ml.tuning.enabled: expected true or false, got int 1"),
        ('bot:\n  poll_seconds: "5"\n', "bot.poll_seconds: expected a number, got text '5'"),
        ("ml:\n  features: {return_lags: [1, '2']}\n", "ml.features.return_lags: expected an"),
    ],
)
def test_load_settings_refuses_coerced_scalars(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    assert expected in str(info.value)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_load_settings_rejects_non_finite_floats_with_the_reason(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, f"strategy:\n  fee_rate: {value}\n"), environ={})
    message = str(info.value)
    assert "strategy.fee_rate: must be a finite number" in message
    assert "less than" not in message


def test_load_settings_keeps_plain_yaml_scalars(tmp_path: Path) -> None:
    text = "ml:\n  seed: 7\nstrategy:\n  cash: 500\n  fee_rate: 0.002\nbot:\n  poll_seconds: null\n"
    settings = load_settings(_write(tmp_path, text), environ={})
    assert (settings.ml.seed, settings.strategy.cash, settings.bot.poll_seconds) == (7, 500, None)
