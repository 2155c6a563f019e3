"""Settings: every one documented, parsed from the environment, unsafe combinations refused."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from signoff.settings import (
    ALERT_EVALUATION_INTERVALS,
    PREFIX,
    Settings,
    SettingsError,
    setting_docs,
)
from signoff.worker import alert_schedule, cron_jobs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
GOOD_SECRET = "x" * 32


def test_every_setting_is_documented():
    text = DOCS.read_text()
    documented = set(re.findall(r"`(SIGNOFF_[A-Z0-9_]+)`", text))
    missing = sorted(set(setting_docs()) - documented)
    assert missing == [], f"add to docs/configuration.md: {missing}"


def test_docs_name_no_setting_that_does_not_exist():
    table_rows = re.findall(r"^\| `(SIGNOFF_[A-Z0-9_]+)`", DOCS.read_text(), re.MULTILINE)
    assert table_rows, "docs/configuration.md has no settings table"
    unknown = sorted(set(table_rows) - set(setting_docs()))
    assert unknown == [], f"documented but not settings: {unknown}"


def test_every_setting_has_a_docstring_and_an_env_name():
    docs = setting_docs()
    assert len(docs) == len(dataclasses.fields(Settings))
    for name, doc in docs.items():
        assert name.startswith(PREFIX) and name == name.upper()
        assert doc.strip(), f"{name} has no documentation"


def test_defaults_when_environment_is_empty():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.is_development
    assert settings.jwt_algorithms == ("HS256",)


def test_from_env_parses_ints_bools_floats_and_lists():
    settings = Settings.from_env(
        {
            "SIGNOFF_PORT": " 9000 ",
            "SIGNOFF_GRAPHIQL": "off",
            "SIGNOFF_WS_CONNECTION_INIT_TIMEOUT": "2.5",
            "SIGNOFF_CORS_ORIGINS": "http://a.example, http://b.example,",
            "SIGNOFF_JWT_ALGORITHMS": "RS256,ES256",
            "SIGNOFF_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----",
            "SIGNOFF_LOG_LEVEL": "DEBUG",
            "UNRELATED": "ignored",
        }
    )
    assert settings.port == 9000
    assert settings.graphiql is False
    assert settings.graphiql_enabled is False
    assert settings.ws_connection_init_timeout == 2.5
    assert settings.cors_origins == ("http://a.example", "http://b.example")
    assert settings.jwt_algorithms == ("RS256", "ES256")
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize("raw, expected", [("1", True), ("TRUE", True), ("no", False)])
def test_booleans(raw, expected):
    assert Settings.from_env({"SIGNOFF_GRAPHIQL": raw}).graphiql is expected


@pytest.mark.parametrize(
    "name, raw",
    [
        ("SIGNOFF_PORT", "eighty"),
        ("SIGNOFF_GRAPHIQL", "maybe"),
        ("SIGNOFF_DB_POOL_MAX", "1.5"),
        ("SIGNOFF_WS_CONNECTION_INIT_TIMEOUT", "soon"),
    ],
)
def test_bad_value_names_the_variable(name, raw):
    with pytest.raises(ValueError, match=f"^{name}: "):
        Settings.from_env({name: raw})


def test_production_refuses_a_short_jwt_secret():
    env = {"SIGNOFF_ENVIRONMENT": "production", "SIGNOFF_JWT_SECRET": "too-short"}
    with pytest.raises(ValueError, match="SIGNOFF_JWT_SECRET"):
        Settings.from_env(env)
    with pytest.raises(ValueError, match="SIGNOFF_JWT_SECRET"):
        Settings.from_env({"SIGNOFF_ENVIRONMENT": "production"})
    ok = Settings.from_env({**env, "SIGNOFF_JWT_SECRET": GOOD_SECRET})
    assert not ok.is_development
    assert ok.effective_jwt_secret == GOOD_SECRET


def test_production_has_no_insecure_defaults():
    settings = Settings.from_env(
        {"SIGNOFF_ENVIRONMENT": "production", "SIGNOFF_JWT_SECRET": GOOD_SECRET}
    )
    assert settings.graphiql_enabled is False
    assert dataclasses.replace(settings, jwt_secret="").effective_jwt_secret == ""


def test_unknown_environment_is_refused():
    with pytest.raises(ValueError, match="SIGNOFF_ENVIRONMENT"):
        Settings.from_env({"SIGNOFF_ENVIRONMENT": "prod"})


def test_mixing_hmac_and_public_key_algorithms_is_refused():
    with pytest.raises(ValueError, match="mix"):
        Settings.from_env(
            {
                "SIGNOFF_JWT_ALGORITHMS": "HS256,RS256",
                "SIGNOFF_JWT_SECRET": GOOD_SECRET,
                "SIGNOFF_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----",
            }
        )


@pytest.mark.parametrize("algorithms", ["none", "NONE", "HS256,none"])
def test_alg_none_is_refused(algorithms):
    with pytest.raises(ValueError, match="SIGNOFF_JWT_ALGORITHMS"):
        Settings.from_env({"SIGNOFF_JWT_ALGORITHMS": algorithms})


def test_public_key_algorithms_need_a_public_key():
    with pytest.raises(ValueError, match="SIGNOFF_JWT_PUBLIC_KEY"):
        Settings.from_env({"SIGNOFF_JWT_ALGORITHMS": "RS256"})


def test_public_key_can_be_read_from_a_file(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
    settings = Settings(jwt_algorithms=("RS256",), jwt_public_key=f"@{pem}")
    assert settings.public_key_pem() == pem.read_text()


def test_pool_bounds_are_checked():
    with pytest.raises(ValueError, match="SIGNOFF_DB_POOL_MIN"):
        Settings.from_env({"SIGNOFF_DB_POOL_MIN": "5", "SIGNOFF_DB_POOL_MAX": "2"})


def test_redacted_masks_the_jwt_secret():
    settings = Settings(jwt_secret=GOOD_SECRET, database_url="postgresql://db/x")
    redacted = settings.redacted()
    assert redacted["jwt_secret"] == "***"
    assert GOOD_SECRET not in repr(redacted)
    assert redacted["database_url"] == "postgresql://db/x"
    assert set(redacted) == {f.name for f in dataclasses.fields(Settings)}
    assert Settings().redacted()["jwt_secret"] == ""  # an unset secret shows as unset


def test_redacted_masks_every_secret_setting():
    secret_fields = [f for f in dataclasses.fields(Settings) if f.metadata.get("secret")]
    assert "jwt_secret" in {f.name for f in secret_fields}
    values = {f.name: f"value-of-{f.name}" for f in secret_fields}
    redacted = Settings(**values).redacted()
    assert {name: redacted[name] for name in values} == dict.fromkeys(values, "***")


def test_redacted_masks_passwords_in_service_urls():
    settings = Settings(
        database_url="postgresql://signoff:hunter2@db:5432/signoff",
        redis_url="redis://:s3cret@cache:6379/0",
    )
    redacted = settings.redacted()
    assert "hunter2" not in redacted["database_url"]
    assert "s3cret" not in redacted["redis_url"]
    assert redacted["database_url"].startswith("postgresql://signoff:")
    assert redacted["database_url"].endswith("@db:5432/signoff")


@pytest.mark.parametrize("raw", ["7", "0", "-5", "90", "45"])
def test_a_sweep_interval_that_does_not_divide_60_is_refused(raw):
    with pytest.raises(SettingsError, match="SIGNOFF_TIMER_SWEEP_SECONDS must divide 60"):
        Settings.from_env({"SIGNOFF_TIMER_SWEEP_SECONDS": raw})


@pytest.mark.parametrize("raw", ["1", "5", "15", "30", "60"])
def test_sweep_intervals_that_divide_60_are_accepted(raw):
    settings = Settings.from_env({"SIGNOFF_TIMER_SWEEP_SECONDS": raw})
    assert settings.timer_sweep_seconds == int(raw)


@pytest.mark.parametrize("raw", ["0", "-60", "7", "45", "61", "90", "150", "420", "7200"])
def test_an_alert_interval_that_repeats_unevenly_is_refused(raw):
    with pytest.raises(SettingsError, match="SIGNOFF_ALERT_EVALUATION_SECONDS must divide 60"):
        Settings.from_env({"SIGNOFF_ALERT_EVALUATION_SECONDS": raw})


def test_a_non_numeric_alert_interval_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="SIGNOFF_ALERT_EVALUATION_SECONDS"):
        Settings.from_env({"SIGNOFF_ALERT_EVALUATION_SECONDS": "a minute"})


@pytest.mark.parametrize("seconds", sorted(ALERT_EVALUATION_INTERVALS))
def test_every_accepted_alert_interval_is_the_schedule_the_worker_runs(seconds):
    """Over a whole hour, the evaluator's cron fields fire exactly every `seconds`."""
    settings = Settings.from_env({"SIGNOFF_ALERT_EVALUATION_SECONDS": str(seconds)})
    minutes, seconds_of_minute = alert_schedule(settings)
    every_minute = set(range(60)) if minutes is None else minutes
    fires = sorted(m * 60 + s for m in every_minute for s in seconds_of_minute)
    gaps = {b - a for a, b in zip(fires, [*fires[1:], fires[0] + 3600], strict=True)}
    assert gaps == {seconds}


def test_the_alert_interval_reaches_the_worker_s_cron_job():
    settings = Settings.from_env({"SIGNOFF_ALERT_EVALUATION_SECONDS": "300"})
    (job,) = [c for c in cron_jobs(settings) if c.name.endswith("evaluate_alert_rules_job")]
    assert (job.minute, job.second) == ({0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}, {50})


def test_a_horizon_shorter_than_the_sweep_interval_is_refused():
    env = {"SIGNOFF_TIMER_SWEEP_SECONDS": "30", "SIGNOFF_TIMER_HORIZON_SECONDS": "20"}
    with pytest.raises(SettingsError, match="SIGNOFF_TIMER_HORIZON_SECONDS"):
        Settings.from_env(env)


def test_timer_tenants_is_a_list():
    settings = Settings.from_env({"SIGNOFF_TIMER_TENANTS": "acme, globex"})
    assert settings.timer_tenants == ("acme", "globex")
