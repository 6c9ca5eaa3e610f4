"""Configuration is read once, validated, and a bad setting is named in one line."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from registry_sync import config
from registry_sync.errors import ConfigError, SecretUnavailable

BASE = {"MODEL_ROOT": "/tmp/models", "REGISTRY_MODELS": "a, b,a", "COMET_WORKSPACE": "ws",
        "COMET_API_KEY": "k3y-secret"}


def load(**overrides):
    return config.sync_config(argparse.Namespace(), {**BASE, **overrides})


def test_defaults_follow_comet_and_the_design():
    settings = load()
    assert settings.comet.url == "https://www.comet.com"
    assert settings.models == ("a", "b")
    assert settings.status == "Production"
    assert settings.interval == 10 and settings.keep_snapshots == 3
    assert settings.serving_url == "" and settings.grouping == "experiment"


def test_url_override_keeps_only_scheme_host_and_port():
    settings = load(COMET_URL_OVERRIDE="http://127.0.0.1:9000/clientlib/")
    assert settings.comet.url == "http://127.0.0.1:9000"


def test_flag_wins_over_environment():
    args = argparse.Namespace(sync_interval="2.5")
    settings = config.sync_config(args, {**BASE, "SYNC_INTERVAL": "30"})
    assert settings.interval == 2.5


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SYNC_INTERVAL", "soon", "SYNC_INTERVAL (or --sync-interval) is 'soon': expected a number"),
    ("SYNC_INTERVAL", "-1", "expected a number > 0"),
    ("SYNC_INTERVAL", "nan", "expected a number > 0"),
    ("KEEP_SNAPSHOTS", "0", "KEEP_SNAPSHOTS (or --keep-snapshots) is '0': expected a whole number"),
    ("COMET_URL_OVERRIDE", "ftp://x", "expected an http(s) URL"),
    ("SYNC_GROUPING", "sometimes", "expected one of experiment, independent"),
    ("SIDECAR_LISTEN", "nowhere", "expected HOST:PORT"),
    ("REGISTRY_MODELS", " , ", "expected a comma-separated list"),
    ("SERVING_URL", "127.0.0.1:8081", "SERVING_URL (or --serving-url) is '127.0.0.1:8081': "
                                      "expected an http(s) URL"),
    ("GUARD_ENABLED", "maybe", "GUARD_ENABLED (or --guard-enabled) is 'maybe': expected true or "
                               "false"),
])
def test_malformed_setting_is_named_with_what_is_expected(name, value, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load(**{name: value})


@pytest.mark.parametrize("missing", ["MODEL_ROOT", "REGISTRY_MODELS", "COMET_WORKSPACE"])
def test_missing_setting_is_named(missing):
    values = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing} .* is required"):
        config.sync_config(argparse.Namespace(), values)


def test_missing_key_names_both_ways_to_give_it():
    values = {k: v for k, v in BASE.items() if k != "COMET_API_KEY"}
    with pytest.raises(ConfigError, match="COMET_API_KEY \\(or COMET_API_KEY_FILE\\)"):
        config.sync_config(argparse.Namespace(), values)



def test_serving_url_requires_a_reload_token():
    with pytest.raises(ConfigError, match="RELOAD_TOKEN"):
        load(SERVING_URL="http://127.0.0.1:8081")
    assert load(SERVING_URL="http://127.0.0.1:8081/", RELOAD_TOKEN="t0ken").serving_url == \
        "http://127.0.0.1:8081"


def test_api_key_file_is_reread_on_each_use(tmp_path: Path):
    key_file = tmp_path / "api-key"
    key_file.write_text("first\n")
    values = {k: v for k, v in BASE.items() if k != "COMET_API_KEY"}
    settings = config.sync_config(argparse.Namespace(), {**values,
                                                         "COMET_API_KEY_FILE": str(key_file)})
    assert settings.comet.read_api_key() == "first"
    key_file.write_text("second")
    assert settings.comet.read_api_key() == "second"


def test_a_missing_or_empty_key_file_is_a_failed_pass_not_a_config_error(tmp_path: Path):
    """During a rotation the file may be gone for a moment: each use raises, nothing exits."""
    values = {**{k: v for k, v in BASE.items() if k != "COMET_API_KEY"},
              "COMET_API_KEY_FILE": str(tmp_path / "api-key")}
    with pytest.raises(ConfigError, match="server is read from the key"):
        config.sync_config(argparse.Namespace(), values)  # the key names the server: needed now
    key_file = tmp_path / "api-key"
    settings = config.sync_config(argparse.Namespace(), {
        **values, "COMET_URL_OVERRIDE": "http://127.0.0.1:1"})
    with pytest.raises(SecretUnavailable, match=r"COMET_API_KEY_FILE .* cannot be read"):
        settings.comet.read_api_key()
    key_file.write_text("\n")
    with pytest.raises(SecretUnavailable, match=r"COMET_API_KEY_FILE .* is empty"):
        settings.comet.read_api_key()
    key_file.write_text("  rotated-key\r\n")
    assert settings.comet.read_api_key() == "rotated-key"


@pytest.mark.parametrize("name", ["COMET_API_KEY", "RELOAD_TOKEN"])
def test_secrets_are_stripped_and_an_inner_line_break_names_the_variable_only(name):
    values = {**BASE, "SERVING_URL": "http://127.0.0.1:8081", "RELOAD_TOKEN": "t0ken"}
    settings = config.sync_config(argparse.Namespace(), {**values, name: "s3cret-value\n"})
    assert "s3cret-value" in (settings.comet.api_key, settings.read_reload_token())
    for bad in ("s3cret\nvalue", "s3cret\rvalue", "s3cret\x00value", "s3cret\u20acvalue",
                "s3cret" + "x" * 5000):
        with pytest.raises(ConfigError, match=name) as raised:
            config.sync_config(argparse.Namespace(), {**values, name: bad})
        assert "s3cret" not in str(raised.value)


def test_reload_token_file_is_reread_and_a_malformed_one_is_refused_at_start(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    values = {**BASE, "SERVING_URL": "http://127.0.0.1:8081", "RELOAD_TOKEN_FILE": str(token_file)}
    settings = config.sync_config(argparse.Namespace(), values)
    token_file.write_text("second")
    assert settings.read_reload_token() == "second"
    token_file.write_text("sec\nond")
    with pytest.raises(SecretUnavailable, match="RELOAD_TOKEN_FILE") as raised:
        settings.read_reload_token()
    assert "ond" not in str(raised.value)
    with pytest.raises(ConfigError, match="RELOAD_TOKEN_FILE"):
        config.sync_config(argparse.Namespace(), values)


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "MODEL_ROOT": str(tmp_path), "REGISTRY_MODELS": "m",
           "COMET_WORKSPACE": "ws", "COMET_API_KEY": "k", "KEEP_SNAPSHOTS": "many"}
    done = subprocess.run([sys.executable, "-m", "registry_sync.cli", "once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "registry-sync: configuration error: KEEP_SNAPSHOTS (or --keep-snapshots) is 'many': "
        "expected a whole number >= 1"]


def _key_with_server(url: str) -> str:
    import base64
    import json

    return "k3y-secret*" + base64.b64encode(json.dumps({"baseUrl": url}).encode()).decode()


def test_key_carrying_its_server_is_used_when_no_override():
    settings = load(COMET_API_KEY=_key_with_server("http://127.0.0.1:9001/"))
    assert settings.comet.url == "http://127.0.0.1:9001"
    assert settings.comet.read_api_key().startswith("k3y-secret*")


def test_url_override_wins_over_the_key_server():
    settings = load(COMET_API_KEY=_key_with_server("http://127.0.0.1:9001/"),
                    COMET_URL_OVERRIDE="http://127.0.0.1:9002/clientlib/")
    assert settings.comet.url == "http://127.0.0.1:9002"


def test_malformed_key_suffix_names_the_variable_never_the_key():
    with pytest.raises(ConfigError, match=r"^COMET_API_KEY is malformed") as caught:
        load(COMET_API_KEY="k3y-secret*%%%")
    assert "k3y-secret" not in str(caught.value)


def test_an_api_key_file_no_http_header_can_carry_is_refused_at_start_naming_it(tmp_path: Path):
    """A character outside printable ASCII (the HTTP library would fail on it with a piece of
    the key in its message) or a key of megabytes: ConfigError naming the file, not the key."""
    key_file = tmp_path / "api-key"
    for content in ("tok\u20acen", "tok\x00en", "t" * 5000):
        key_file.write_text(content, encoding="utf-8")
        with pytest.raises(ConfigError, match=r"COMET_API_KEY_FILE .* must hold") as raised:
            config.sync_config(argparse.Namespace(), {**BASE, "COMET_API_KEY_FILE": str(key_file)})
        assert "tok" not in str(raised.value)


def test_an_empty_candidate_status_turns_the_challenger_off():
    """REGISTRY_CANDIDATE_STATUS= (empty) is kept, not replaced by the default Staging."""
    import argparse

    from registry_sync import config

    def read(env):
        return config.read(argparse.Namespace(), env, ["REGISTRY_CANDIDATE_STATUS"])

    assert read({"REGISTRY_CANDIDATE_STATUS": ""}) == {"REGISTRY_CANDIDATE_STATUS": ""}
    assert read({}) == {"REGISTRY_CANDIDATE_STATUS": "Staging"}
