"""Configuration: YAML + pydantic, errors that name file:line and field, ${ENV} and file: secrets."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import Field, SecretStr

from logtide.config import ConfigError, Model, load_config
from logtide.role import RoleConfig


class Sink(Model):
    name: str
    batch: int = 100


class Example(RoleConfig):
    endpoint: str = "http://localhost"
    token: SecretStr | None = None
    workers: int = 1
    sinks: list[Sink] = Field(default_factory=list)


def write(tmp_path, text: str, name: str = "role.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def test_valid_config_loads_with_defaults(tmp_path):
    p = write(
        tmp_path,
        """
        kafka:
          bootstrap: k1:9092
          client: kafka-python
        workers: 4
        sinks:
          - name: audit
    """,
    )
    cfg = load_config(p, Example)
    assert cfg.kafka.bootstrap == "k1:9092" and cfg.kafka.client == "kafka-python"
    assert cfg.workers == 4
    assert cfg.sinks[0].name == "audit" and cfg.sinks[0].batch == 100
    assert cfg.http.port == 9464 and cfg.log_level == "info"


def test_empty_file_gives_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "# nothing configured\n"), Example)
    assert cfg.workers == 1 and cfg.kafka.bootstrap is None


def test_unknown_top_level_key_names_file_line_and_field(tmp_path):
    p = write(
        tmp_path,
        """
        workers: 2
        wrokers: 3
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    assert str(exc.value) == f"{p}:2: unknown field 'wrokers'"


def test_unknown_nested_key_names_its_line(tmp_path):
    p = write(
        tmp_path,
        """
        kafka:
          bootstrap: k:9092
          bootstarp: typo:9092
    """,
    )
    with pytest.raises(ConfigError, match=rf"^{p}:3: unknown field 'kafka.bootstarp'$"):
        load_config(p, Example)


def test_wrong_type_names_file_line_and_field(tmp_path):
    p = write(
        tmp_path,
        """
        kafka:
          bootstrap: k:9092
        workers: many
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:3: field 'workers':")
    assert "integer" in msg


def test_wrong_type_inside_a_list_names_the_item_line(tmp_path):
    p = write(
        tmp_path,
        """
        sinks:
          - name: audit
          - name: analytics
            batch: lots
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    assert str(exc.value).startswith(f"{p}:4: field 'sinks.1.batch':")


def test_missing_required_field_names_the_item(tmp_path):
    p = write(
        tmp_path,
        """
        sinks:
          - batch: 5
    """,
    )
    with pytest.raises(ConfigError, match=r"field 'sinks.0.name': Field required"):
        load_config(p, Example)


def test_bad_enum_value(tmp_path):
    p = write(tmp_path, "kafka:\n  client: librdkafka\n")
    with pytest.raises(ConfigError, match=rf"^{p}:2: field 'kafka.client':"):
        load_config(p, Example)


def test_several_errors_are_all_reported(tmp_path):
    p = write(tmp_path, "workers: x\nnope: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    lines = str(exc.value).splitlines()
    assert len(lines) == 2
    assert any(line.startswith(f"{p}:1: field 'workers'") for line in lines)
    assert f"{p}:2: unknown field 'nope'" in lines


def test_env_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_TEST_BOOTSTRAP", "broker-7:9092")
    monkeypatch.setenv("LT_TEST_HOST", "api.example")
    p = write(
        tmp_path,
        """
        kafka:
          bootstrap: ${LT_TEST_BOOTSTRAP}
        endpoint: https://${LT_TEST_HOST}/v1
    """,
    )
    cfg = load_config(p, Example)
    assert cfg.kafka.bootstrap == "broker-7:9092"
    assert cfg.endpoint == "https://api.example/v1"


def test_env_reference_with_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LT_TEST_UNSET", raising=False)
    monkeypatch.setenv("LT_TEST_SET", "given")
    p = write(
        tmp_path,
        """
        endpoint: ${LT_TEST_UNSET:-http://fallback:8080}
        log_level: ${LT_TEST_SET:-debug}
    """,
    )
    cfg = load_config(p, Example)
    assert cfg.endpoint == "http://fallback:8080"
    assert cfg.log_level == "given"


def test_missing_env_var_names_file_line_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LT_TEST_MISSING", raising=False)
    p = write(
        tmp_path,
        """
        workers: 2
        token: ${LT_TEST_MISSING}
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    assert str(exc.value) == f"{p}:2: environment variable LT_TEST_MISSING is not set"


def test_file_secret(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("t0p-secret\n")
    p = write(tmp_path, f"token: file:{secret}\n")
    cfg = load_config(p, Example)
    assert cfg.token.get_secret_value() == "t0p-secret"
    assert "t0p-secret" not in repr(cfg)


def test_missing_secret_file_names_line(tmp_path):
    p = write(tmp_path, f"workers: 1\ntoken: file:{tmp_path}/absent\n")
    with pytest.raises(ConfigError, match=rf"^{p}:2: cannot read secret file .*absent"):
        load_config(p, Example)


def test_secret_value_not_in_error_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_TEST_PW", "hunter2")
    p = write(tmp_path, "workers: ${LT_TEST_PW}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    assert "hunter2" not in str(exc.value)
    assert str(exc.value).startswith(f"{p}:1: field 'workers'")


def test_invalid_yaml_names_the_line(tmp_path):
    p = write(
        tmp_path,
        """
        workers: 2
        kafka:
          bootstrap: [unclosed
        log_level: info
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Example)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:")
    assert "invalid YAML" in msg
    line = int(msg.split(":")[1])
    assert 3 <= line <= 5


def test_tab_indentation_is_invalid_yaml(tmp_path):
    p = write(tmp_path, "kafka:\n\tbootstrap: x\n")
    with pytest.raises(ConfigError, match=rf"^{p}:2: invalid YAML"):
        load_config(p, Example)


def test_top_level_must_be_a_mapping(tmp_path):
    p = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match=rf"^{p}"):
        load_config(p, Example)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", Example)


class Retry(Model):
    initial_seconds: float = 0.5


class Timed(RoleConfig):
    session_timeout_seconds: float = 45
    timeout_seconds: float = 10
    lateness_seconds: float = 30
    retries: list[Retry] = Field(default_factory=list)


@pytest.mark.parametrize(
    "old,new,value",
    [
        ("session_timeout_ms", "session_timeout_seconds", "6000"),
        ("timeout_s", "timeout_seconds", "3"),
        ("lateness", "lateness_seconds", "30s"),
    ],
)
def test_a_duration_key_by_its_old_name_is_refused_naming_the_new_one(tmp_path, old, new, value):
    p = write(
        tmp_path,
        f"""
        kafka:
          bootstrap: k1:9092
        {old}: {value}
    """,
    )
    with pytest.raises(ConfigError) as exc:
        load_config(p, Timed)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:3: unknown field '{old}': renamed '{new}', a number of seconds")
    assert ("milliseconds are now seconds" in msg) == old.endswith("_ms")


def test_an_old_duration_key_inside_a_list_item_names_its_line_and_new_name(tmp_path):
    p = write(
        tmp_path,
        """
        retries:
          - initial_seconds: 1
          - initial: 1s
    """,
    )
    with pytest.raises(ConfigError, match=r":3: unknown field 'retries.1.initial': renamed 'initial_seconds'"):
        load_config(p, Timed)


def test_a_duration_given_as_a_string_is_refused(tmp_path):
    p = write(tmp_path, "lateness_seconds: 30s\n")
    with pytest.raises(ConfigError, match=r":1: field 'lateness_seconds': Input should be a valid number"):
        load_config(p, Timed)


def test_an_unknown_key_that_is_no_old_name_gets_no_suggestion(tmp_path):
    p = write(tmp_path, "workers_ms: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, Timed)
    assert str(exc.value) == f"{p}:1: unknown field 'workers_ms'"
