"""Configuration: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from serving.config import PinWorkers, from_env, front_from_env, load
from serving.errors import ConfigError
from serving.front.affinity import should_pin


def test_defaults():
    """Only MODEL_ROOT is required; the rest have the documented defaults."""
    config = from_env({"MODEL_ROOT": "/models"})
    assert config.model_root == Path("/models")
    assert (config.max_batch, config.max_body_bytes, config.check_interval) == \
        (1000, 2 * 1024 * 1024, 0.2)
    assert config.reload_token is None and config.admin_port is None
    assert config.golden_min_accuracy == 0.7 and config.log_level == "info"


def test_model_root_is_required():
    """Missing MODEL_ROOT: ConfigError naming it."""
    with pytest.raises(ConfigError, match="MODEL_ROOT is required"):
        from_env({})


@pytest.mark.parametrize(("name", "value"), [("MAX_BATCH", "0"), ("MAX_BODY_BYTES", "lots"),
                                             ("MODEL_CHECK_INTERVAL", "-1"),
                                             ("ADMIN_PORT", "70000"), ("LOG_LEVEL", "loud"),
                                             ("GOLDEN_MIN_ACCURACY", "2")])
def test_malformed_values_name_the_variable(name, value):
    """A bad value: ConfigError naming the variable and what it expects."""
    with pytest.raises(ConfigError, match=f"^{name} is '{value}': expected"):
        from_env({"MODEL_ROOT": "/m", name: value})


def test_the_token_may_come_from_a_file(tmp_path):
    """RELOAD_TOKEN_FILE is read (stripped); a bad value is never echoed."""
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    assert from_env({"MODEL_ROOT": "/m", "RELOAD_TOKEN_FILE": str(secret)}).reload_token == \
        "s3cret-token"
    with pytest.raises(ConfigError, match="cannot be read"):
        from_env({"MODEL_ROOT": "/m", "RELOAD_TOKEN_FILE": str(tmp_path / "missing")})
    assert "s3cret" not in repr(from_env({"MODEL_ROOT": "/m", "RELOAD_TOKEN": "s3cret"}))


def test_a_token_file_that_is_not_utf8_is_a_config_error(tmp_path):
    """Bytes that are not UTF-8 text: ConfigError naming the variable, as the sidecar says it."""
    secret = tmp_path / "token"
    secret.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"^RELOAD_TOKEN_FILE .* cannot be read: not UTF-8 text$"):
        from_env({"MODEL_ROOT": "/m", "RELOAD_TOKEN_FILE": str(secret)})


def test_load_lays_overrides_over_the_environment(monkeypatch):
    """create_app's mapping: variables over os.environ, lower-case names set fields."""
    monkeypatch.setenv("MODEL_ROOT", "/from-env")
    monkeypatch.setenv("MAX_BATCH", "7")
    config = load({"MAX_BATCH": 9, "watch": False})
    assert config.model_root == Path("/from-env") and config.max_batch == 9
    assert config.watch is False


def test_validation_settings_default_to_the_pod_and_name_the_variable():
    """120 s deadline, 768 MiB for the validator, 1 s of waiting in a request; bad: named."""
    config = from_env({"MODEL_ROOT": "/m"})
    assert (config.validation_timeout, config.validation_memory_limit, config.validation_wait) \
        == (120.0, 768 * 1024 * 1024, 1.0)
    assert from_env({"MODEL_ROOT": "/m", "VALIDATION_MEMORY_LIMIT": "0"}
                    ).validation_memory_limit == 0
    with pytest.raises(ConfigError, match=r"^VALIDATION_TIMEOUT is 'soon': expected"):
        from_env({"MODEL_ROOT": "/m", "VALIDATION_TIMEOUT": "soon"})


@pytest.mark.parametrize(("variables", "named"), [
    ({"VALIDATION_WAIT": "30"}, "VALIDATION_WAIT is 30"),
    ({"BIND": "10.0.0.5:8081", "ADMIN_PORT": "8081"}, "ADMIN_PORT is 8081"),
    ({"MAX_BODY_BYTES": str(3 * 1024 * 1024), "FRONT_BODY_MEMORY": "2"}, "FRONT_BODY_MEMORY"),
    ({"METRICS_PORT": "9102"}, "METRICS_PORT is set without ADMIN_PORT"),
    ({"ADMIN_PORT": "8081", "METRICS_PORT": "8081"}, "METRICS_PORT is 8081"),
    ({"BIND": "0.0.0.0:9102", "ADMIN_PORT": "8081", "METRICS_PORT": "9102"}, "METRICS_PORT is"),
    ({"FRONT_WORKER_MAX_RSS": "72"}, r"FRONT_WORKER_MAX_RSS is 72 MiB: expected more than the 72"),
    ({"FRONT_MAX_HEADER_BYTES": "4096"}, "FRONT_MAX_HEADER_BYTES is '4096': expected .* >= 8192"),
])
def test_front_settings_that_cannot_work_together_are_refused_naming_them(variables, named):
    """A wait past the worker timeout, the admin port on the public one, less body memory than
    one body, a worker memory bound the clients alone could reach (1,024 connections x 16 KiB
    heads + 64 MiB of bodies per 2 workers = 72 MiB), a head buffer HTTP cannot use: refused at
    start."""
    with pytest.raises(ConfigError, match=named):
        front_from_env(variables)


@pytest.mark.parametrize("content", [b"s3cr\x00et", b"s3cr\ret", b"\x00\x00",
                                     "s3cr\u20acet".encode(), b"s3cr" * 2000])
def test_a_reload_token_file_no_client_could_send_is_refused_naming_it(tmp_path, content):
    """NUL, CR, non-ASCII or megabytes: no Authorization header could match it, so start fails
    naming the file (as the sidecar refuses the same file), never showing the value."""
    token = tmp_path / "token"
    token.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^RELOAD_TOKEN_FILE .* must hold") as raised:
        from_env({"MODEL_ROOT": str(tmp_path), "RELOAD_TOKEN_FILE": str(token)})
    assert "s3cr" not in str(raised.value)


@pytest.mark.parametrize(("mode", "cpus", "workers", "pinned"), [
    (PinWorkers.AUTO, 2, 2, True), (PinWorkers.AUTO, 64, 2, False), (PinWorkers.AUTO, 1, 2, False),
    (PinWorkers.ON, 64, 2, True), (PinWorkers.ON, 1, 2, False), (PinWorkers.OFF, 2, 2, False)])
def test_workers_are_pinned_only_with_a_cpu_for_each(mode, cpus, workers, pinned):
    """auto: exactly one CPU per worker (an exclusive cpuset); true: enough of them; never two
    workers on one CPU."""
    assert should_pin(mode, cpus, workers) is pinned


def test_the_fronts_memory_settings_default_to_bounds_and_off_for_the_worker_bound():
    """Answers unread for 10 s close, heads up to 16 KiB, no worker bound unless set."""
    config = front_from_env({})
    assert (config.send_timeout, config.max_header_bytes, config.worker_max_rss) == \
        (10, 16384, 0)
    assert front_from_env({"FRONT_WORKER_MAX_RSS": "320"}).worker_max_rss == 320 * 1024 * 1024


@pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "RELOAD_TOKEN", "COMET_API_KEY"])
@pytest.mark.parametrize("value", ["s3cr\u20acet", "s3cr\x00et", "s3cr\x1bet", "s3cr" * 2000])
def test_a_secret_variable_no_header_could_carry_is_refused_at_start_naming_it(
        tmp_path, name, value):
    """Non-ASCII, a control character or kilobytes: no client's header could match it (the
    webhook would answer 401 to Comet for ever), so start fails naming the variable, never
    showing the value."""
    with pytest.raises(ConfigError, match=f"^{name} is \\(hidden\\): expected one line of "
                                          "printable ASCII") as raised:
        from_env({"MODEL_ROOT": str(tmp_path), "MPM_ENABLED": "true",
                  "COMET_API_KEY": "a-valid-key", name: value})
    assert "s3cr" not in str(raised.value)


def test_a_blank_value_is_unset_and_values_are_stripped():
    """`MAX_BATCH=   ` (an env file's trailing blanks) keeps the default; ` 7 ` is 7."""
    assert from_env({"MODEL_ROOT": "/m", "MAX_BATCH": "   ", "RELOAD_TOKEN": " "}) == \
        from_env({"MODEL_ROOT": "/m"})
    assert from_env({"MODEL_ROOT": " /m ", "MAX_BATCH": " 7 "}).max_batch == 7
    with pytest.raises(ConfigError, match=r"^MODEL_ROOT is required: shared directory"):
        from_env({"MODEL_ROOT": "  "})


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SIDECAR_URL", "127.0.0.1:8090", "an http(s) URL"),
    ("COMET_URL_OVERRIDE", "ftp://comet", "an http(s) URL"),
    ("CANARY_PERCENT", "half", "a percentage between 0 and 100"),
    ("ADMIN_PORT", "admin", "a TCP port between 1 and 65535"),
    ("FRONT_BALANCE", "maybe", "true or false"),
])
def test_a_malformed_value_says_what_is_expected_in_words(name, value, expected):
    """Never Python's own message (`invalid literal for int()`), never a flag serving has not."""
    read = front_from_env if name.startswith(("FRONT_", "ADMIN_")) else from_env
    with pytest.raises(ConfigError, match=re.escape(f"{name} is '{value}': expected {expected}")):
        read({"MODEL_ROOT": "/m", name: value})


def test_the_comet_server_is_kept_as_its_root():
    """COMET_URL_OVERRIDE as the SDK reads it: only scheme://host:port, for MPM and the verdict."""
    config = from_env({"MODEL_ROOT": "/m", "COMET_URL_OVERRIDE": "http://127.0.0.1:9/clientlib/"})
    assert config.mpm.url == config.challenger.url == "http://127.0.0.1:9"
