"""Configuration: every variable of the README's table, environment over init() keywords,
and one clear warning per bad value; resolution never raises."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdeck_sensor._config import PROVIDER_NAMES, Config, resolve_config
from flightdeck_sensor._url import is_loopback_host, is_private_host, normalize_server_url

BASE = {"FLIGHTDECK_SERVER": "http://127.0.0.1:4000", "FLIGHTDECK_TOKEN": "tok-SECRET-123",
        "USER": "alice", "FLIGHTDECK_HOSTNAME": "box"}


def resolve(**env: str) -> tuple[Config, list[str]]:
    return resolve_config({**BASE, **env})


def test_defaults_of_a_minimal_environment() -> None:
    config, warnings = resolve()

    assert warnings == []
    assert config.enabled is True
    assert config.server == "http://127.0.0.1:4000/ingest"
    assert config.token == "tok-SECRET-123"
    assert (config.user, config.hostname, config.agent_name, config.flavor) == (
        "alice", "box", "alice@box", "alice@box")
    assert config.agent_type == "production"
    assert config.providers == frozenset(PROVIDER_NAMES)
    assert config.capture_prompts is False
    assert config.inject_stream_usage is False
    assert config.log_level is None
    assert config.shutdown_timeout == 2.0
    assert config.spool_enabled is True and config.spool_dir is None
    assert config.session_id_hint is None


def test_no_server_means_off_and_silent() -> None:
    config, warnings = resolve_config({"USER": "alice"})

    assert config.enabled is False
    assert warnings == []


def test_init_without_any_server_says_why_it_stays_off() -> None:
    config, warnings = resolve_config({}, server=None, token="t")

    assert config.enabled is False
    assert warnings == ["flightdeck-sensor: init() got no server and FLIGHTDECK_SERVER is "
                        "unset; the sensor stays off"]


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off"])
def test_enabled_false_turns_the_sensor_off(value: str) -> None:
    config, warnings = resolve(FLIGHTDECK_ENABLED=value)

    assert config.enabled is False
    assert warnings == []


def test_environment_wins_over_init_keywords() -> None:
    config, warnings = resolve_config(
        {**BASE, "FLIGHTDECK_AGENT_NAME": "env-agent", "FLIGHTDECK_AGENT_TYPE": "coding",
         "FLIGHTDECK_CAPTURE_PROMPTS": "true", "FLIGHTDECK_SHUTDOWN_TIMEOUT": "5",
         "FLIGHTDECK_PROVIDERS": "openai"},
        server="https://kwarg.example.com", token="kwarg-token", agent_name="kwarg-agent",
        agent_type="production", capture_prompts=False, shutdown_timeout=9, providers=["anthropic"])

    assert warnings == []
    assert config.server == "http://127.0.0.1:4000/ingest"
    assert config.token == "tok-SECRET-123"
    assert config.agent_name == "env-agent"
    assert config.agent_type == "coding"
    assert config.capture_prompts is True
    assert config.shutdown_timeout == 5.0
    assert config.providers == frozenset({"openai"})


def test_init_keywords_apply_when_the_environment_is_silent() -> None:
    config, warnings = resolve_config(
        {"USER": "bob"}, server="https://flightdeck.example.com/", token="kw",
        agent_name="etl", agent_type="CODING", capture_prompts=True, shutdown_timeout=0.5,
        providers=("openai", "litellm"), log_level="info", spool=False)

    assert warnings == []
    assert config.server == "https://flightdeck.example.com/ingest"
    assert (config.agent_name, config.agent_type, config.capture_prompts) == ("etl", "coding",
                                                                              True)
    assert config.shutdown_timeout == 0.5
    assert config.providers == frozenset({"openai", "litellm"})
    assert config.log_level == 20
    assert config.spool_enabled is False


def test_legacy_agent_variables_still_work() -> None:
    config, _ = resolve(AGENT_FLAVOR="nightly-etl", AGENT_TYPE="coding")

    assert config.agent_name == "nightly-etl"
    assert config.flavor == "nightly-etl"
    assert config.agent_type == "coding"


def test_flavor_is_agent_flavor_even_when_agent_name_is_set() -> None:
    config, _ = resolve(AGENT_FLAVOR="flavor-x", FLIGHTDECK_AGENT_NAME="name-y")

    assert (config.agent_name, config.flavor) == ("name-y", "flavor-x")


# -- bad values: one warning each, naming variable, value and replacement ----------

BAD_VALUES = [
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "soon", "is not a number of seconds >= 0; using 2.0",
     "shutdown_timeout", 2.0),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "-1", "is not a number of seconds >= 0; using 2.0",
     "shutdown_timeout", 2.0),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "nan", "is not a number of seconds >= 0; using 2.0",
     "shutdown_timeout", 2.0),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "inf", "is not a number of seconds >= 0; using 2.0",
     "shutdown_timeout", 2.0),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "1e10", "is above the maximum of 300; using 300.0",
     "shutdown_timeout", 300.0),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "1e400", "is not a number of seconds >= 0; using 2.0",
     "shutdown_timeout", 2.0),
    ("FLIGHTDECK_LOG_LEVEL", "\u00b2", "is not a log level (DEBUG, INFO, WARNING, ERROR); "
     "using None", "log_level", None),
    ("FLIGHTDECK_AGENT_TYPE", "robot", "is not 'production' or 'coding'; using 'production'",
     "agent_type", "production"),
    ("FLIGHTDECK_CAPTURE_PROMPTS", "maybe", "is not true or false; using False",
     "capture_prompts", False),
    ("FLIGHTDECK_INJECT_STREAM_USAGE", "sure", "is not true or false; using False",
     "inject_stream_usage", False),
    ("FLIGHTDECK_ALLOW_INSECURE", "perhaps", "is not true or false; using False",
     "allow_insecure", False),
    ("FLIGHTDECK_ENABLED", "kinda", "is not true or false; using True", "enabled", True),
    ("FLIGHTDECK_LOG_LEVEL", "loud", "is not a log level (DEBUG, INFO, WARNING, ERROR); "
     "using None", "log_level", None),
    ("FLIGHTDECK_SPOOL", "sometimes", "is not on or off; using True", "spool_enabled", True),
    ("FLIGHTDECK_MAX_QUEUE_EVENTS", "0", "is not a positive integer; using 10000",
     "max_queue_events", 10_000),
    ("FLIGHTDECK_PARENT_SESSION_ID", "parent", "is not a UUID; using None",
     "parent_session_id", None),
]


@pytest.mark.parametrize(("variable", "value", "says", "field", "used"), BAD_VALUES,
                         ids=[f"{v}={x}" for v, x, *_ in BAD_VALUES])
def test_bad_value_gives_one_warning_and_the_default(
        variable: str, value: str, says: str, field: str, used: object) -> None:
    config, warnings = resolve(**{variable: value})

    assert warnings == [f"flightdeck-sensor: {variable}={value!r} {says} instead"]
    assert getattr(config, field) == used
    assert config.enabled is (field != "enabled" or used)


@pytest.mark.parametrize(("variable", "field", "default"), [
    ("FLIGHTDECK_LOG_LEVEL", "log_level", None),
    ("FLIGHTDECK_MAX_QUEUE_EVENTS", "max_queue_events", 10_000),
    ("FLIGHTDECK_SHUTDOWN_TIMEOUT", "shutdown_timeout", 2.0),
])
def test_a_number_too_long_to_parse_is_a_bad_value_not_a_sensor_off(
        variable: str, field: str, default: object) -> None:
    config, warnings = resolve(**{variable: "9" * 5000})

    assert config.enabled is True and getattr(config, field) == default
    [warning] = warnings
    assert warning.startswith(f"flightdeck-sensor: {variable}='9999") and len(warning) < 300


def test_a_shutdown_timeout_above_the_maximum_from_init_is_cut_too() -> None:
    config, warnings = resolve_config(BASE, shutdown_timeout=1e12)

    assert config.shutdown_timeout == 300.0
    assert warnings == ["flightdeck-sensor: init(shutdown_timeout=...)=1000000000000.0 is above "
                        "the maximum of 300; using 300.0 instead"]


def test_bad_environment_value_falls_back_to_the_init_keyword() -> None:
    config, warnings = resolve_config({**BASE, "FLIGHTDECK_SHUTDOWN_TIMEOUT": "soon"},
                                      shutdown_timeout=7)

    assert config.shutdown_timeout == 7.0
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_SHUTDOWN_TIMEOUT='soon' is not a number "
                        "of seconds >= 0; using 7.0 instead"]


def test_unknown_providers_are_named_and_the_known_ones_kept() -> None:
    config, warnings = resolve(FLIGHTDECK_PROVIDERS="openai, cohere")

    assert config.providers == frozenset({"openai"})
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_PROVIDERS='openai, cohere' names unknown "
                        "provider(s) cohere (known: anthropic, openai, litellm); using openai"]


def test_only_unknown_providers_means_all_of_them() -> None:
    config, warnings = resolve(FLIGHTDECK_PROVIDERS="bogus")

    assert config.providers == frozenset(PROVIDER_NAMES)
    assert len(warnings) == 1 and "using anthropic,litellm,openai" in warnings[0]


@pytest.mark.parametrize(("value", "expected"), [
    ("all", set(PROVIDER_NAMES)), ("none", set()), ("OpenAI Anthropic", {"openai", "anthropic"}),
])
def test_providers_spellings(value: str, expected: set[str]) -> None:
    config, warnings = resolve(FLIGHTDECK_PROVIDERS=value)

    assert (config.providers, warnings) == (frozenset(expected), [])


@pytest.mark.parametrize(("value", "level"), [("DEBUG", 10), ("info", 20), ("warn", 30),
                                               ("ERROR", 40), ("15", 15)])
def test_log_level_spellings(value: str, level: int) -> None:
    assert resolve(FLIGHTDECK_LOG_LEVEL=value)[0].log_level == level


def test_unknown_init_option_is_named() -> None:
    _, warnings = resolve_config(BASE, shutdown_timeot=3)

    assert warnings == ["flightdeck-sensor: init() got an unknown option 'shutdown_timeot'; "
                        "it is ignored"]


def test_spool_dir_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")

    assert resolve(FLIGHTDECK_SPOOL_DIR="~/spool")[0].spool_dir == "/home/alice/spool"


# -- token ----------------------------------------------------------------------


def test_missing_token_warns_and_the_sensor_stays_on() -> None:
    config, warnings = resolve_config({"FLIGHTDECK_SERVER": "http://localhost:4000"})

    assert config.enabled is True and config.token is None
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_TOKEN is not set; events are sent "
                        "without a token and a Flightdeck server will refuse them (401)"]


def test_bearer_prefix_is_removed_from_the_token() -> None:
    config, warnings = resolve(FLIGHTDECK_TOKEN="Bearer tok-SECRET-123")

    assert config.token == "tok-SECRET-123"
    assert len(warnings) == 1 and "tok-SECRET" not in warnings[0]


def test_token_with_a_newline_turns_the_sensor_off_without_showing_it() -> None:
    config, warnings = resolve(FLIGHTDECK_TOKEN="tok-SECRET\nX-Evil: 1")

    assert config.enabled is False
    assert len(warnings) == 1 and "value not shown" in warnings[0]
    assert "SECRET" not in warnings[0]


def test_token_never_appears_in_repr_or_as_dict() -> None:
    config, _ = resolve()

    assert "tok-SECRET-123" not in repr(config)
    assert "tok-SECRET-123" not in str(config.as_dict())


def test_config_is_immutable_and_replace_makes_a_copy() -> None:
    config, _ = resolve()

    with pytest.raises(AttributeError):
        config.server = "x"  # type: ignore[misc]
    changed = config.replace(shutdown_timeout=9.0)
    assert (changed.shutdown_timeout, config.shutdown_timeout) == (9.0, 2.0)
    assert changed == config.replace(shutdown_timeout=9.0) and changed != config


# -- server URL (docs/protocol.md, the server URL) -----------------------------------------------


@pytest.mark.parametrize(("raw", "normalized"), [
    ("http://127.0.0.1:4000", "http://127.0.0.1:4000/ingest"),
    ("http://127.0.0.1:4000/", "http://127.0.0.1:4000/ingest"),
    ("http://localhost:4000/ingest/", "http://localhost:4000/ingest"),
    ("https://flightdeck.example.com", "https://flightdeck.example.com/ingest"),
    ("HTTPS://flightdeck.example.com/api", "https://flightdeck.example.com/api/ingest"),
    ("https://flightdeck.example.com/ingestion", "https://flightdeck.example.com/ingestion/ingest"),
    ("https://host.example.com/a/ingest/v1", "https://host.example.com/a/ingest/v1"),
    ("http://flightdeck.internal/ingest", "http://flightdeck.internal/ingest"),
    ("http://10.1.2.3:8080", "http://10.1.2.3:8080/ingest"),
    ("http://[::1]:4000", "http://[::1]:4000/ingest"),
    ("http://collector:4000", "http://collector:4000/ingest"),
    ("  https://h.example.com/x?y=1  ", "https://h.example.com/x/ingest"),
])
def test_server_url_normalization(raw: str, normalized: str) -> None:
    assert normalize_server_url(raw) == (normalized, None)


@pytest.mark.parametrize(("raw", "problem"), [
    ("ftp://flightdeck.example.com", "is not an http:// or https:// URL"),
    ("flightdeck.example.com:4000", "is not an http:// or https:// URL"),
    ("http://", "has no valid host[:port]"),
    ("http://host.example.com:port", "has no valid host[:port]"),
    ("http://flightdeck.example.com", "uses plain http to a non-local host"),
    ("http://8.8.8.8:4000", "uses plain http to a non-local host"),
    ("http://127.0.0.1:99999", "has no valid host[:port] (the port must be 1-65535)"),
    ("http://127.0.0.1:0", "has no valid host[:port]"),
    ("http://127.0.0.1:123456789012345678901234567890", "has no valid host[:port]"),
    ("http://127.0.0.1:4000/in gest", "contains spaces, control characters"),
    ("http://127.0.0.1:4000/\x1b[2J", "contains spaces, control characters"),
    ("http://127.0.0.1:4000/\r\nX-Evil: 1", "contains spaces, control characters"),
    ("http://127.0.0.1:4000/caf\u00e9", "contains spaces, control characters or non-ASCII"),
    ("http://" + "a" * 100_000, "is longer than 2048 characters"),
    ("http://ho<st>:4000", "has no valid host[:port]"),
    ("http://[zz::1]:4000", "has no valid host[:port]"),
    ("http://169.254.169.254/latest", "uses plain http to a non-local host"),
    ("http://2852039166/latest", "uses plain http to a non-local host"),
    ("http://[fe80::1]:4000", "uses plain http to a non-local host"),
])
def test_unusable_server_url(raw: str, problem: str) -> None:
    url, message = normalize_server_url(raw)

    assert url == ""
    assert message is not None and message.startswith(problem)


def test_insecure_server_warns_names_the_fix_and_turns_the_sensor_off() -> None:
    config, warnings = resolve(FLIGHTDECK_SERVER="http://user:pw@flightdeck.example.com")

    assert config.enabled is False
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_SERVER='http://***@flightdeck.example.com'"
                        " uses plain http to a non-local host, which would send the token "
                        "unencrypted (use https, or set FLIGHTDECK_ALLOW_INSECURE=true); the "
                        "sensor stays off"]


@pytest.mark.parametrize("raw", [
    "http://127.0.0.1:99999", "http://127.0.0.1:4000/a b", "http://\x1b]0;owned\x07\x1b[2J:4000",
    "http://" + "\x1b[31m" * 20_000, "http://user:hunter2@127.0.0.1:0",
])
def test_an_unusable_url_gives_one_short_sanitized_warning_and_the_sensor_is_off(
        raw: str) -> None:
    config, warnings = resolve(FLIGHTDECK_SERVER=raw)

    [warning] = warnings
    assert config.enabled is False and config.server == ""
    assert warning.startswith("flightdeck-sensor: FLIGHTDECK_SERVER=")
    assert warning.endswith("; the sensor stays off")
    assert len(warning) < 400
    assert warning.isprintable() and "hunter2" not in warning


def test_user_info_in_the_url_is_dropped_and_never_shown() -> None:
    config, warnings = resolve(FLIGHTDECK_SERVER="http://alice:hunter2@127.0.0.1:4000/x")

    assert (config.enabled, config.server) == (True, "http://127.0.0.1:4000/x/ingest")
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_SERVER='http://***@127.0.0.1:4000/x' "
                        "contains a user name or password, which the sensor never sends (it "
                        "authenticates with FLIGHTDECK_TOKEN); it is ignored"]
    assert "hunter2" not in repr(config) + str(config.as_dict())


def test_allow_insecure_permits_plain_http_anywhere() -> None:
    config, warnings = resolve(FLIGHTDECK_SERVER="http://flightdeck.example.com",
                               FLIGHTDECK_ALLOW_INSECURE="true")

    assert (config.enabled, config.server, warnings) == (
        True, "http://flightdeck.example.com/ingest", [])


@pytest.mark.parametrize(("host", "private"), [
    ("localhost", True), ("api.localhost", True), ("127.0.0.2", True), ("10.0.0.1", True),
    ("172.16.0.1", True), ("172.31.255.255", True), ("172.32.0.1", False),
    ("192.168.1.1", True), ("169.254.0.1", False), ("169.254.169.254", False),
    ("2852039166", False), ("0xa9fea9fe", False), ("0251.0376.0251.0376", False),
    ("10.1", True), ("::1", True), ("fd00::1", True),
    ("fe80::1", False), ("febf::1", False), ("2001:db8::1", False), ("8.8.8.8", False),
    ("example.com", False),
    ("flightdeck.svc.cluster.local", True), ("collector", True), ("x.internal", True),
])
def test_private_hosts(host: str, private: bool) -> None:
    assert is_private_host(host) is private


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST.", True), ("api.localhost", True), ("127.0.0.1", True),
    ("127.1.2.3", True), ("127.1.2.256", False), ("127.1", True), ("0x7f000001", True),
    ("::1", True), ("10.0.0.1", False),
    ("192.168.1.1", False),
    ("collector", False), ("fd00::1", False), ("127.example.com", False),
    ("flightdeck.example.com", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("value", "expected"), [
    ("gzip", "gzip"), ("NONE", "none"), (" auto ", "auto")])
def test_compression_takes_auto_gzip_or_none(value: str, expected: str) -> None:
    config, warnings = resolve(FLIGHTDECK_COMPRESSION=value)

    assert (config.compression, warnings) == (expected, [])


def test_a_bad_compression_warns_and_keeps_auto() -> None:
    config, warnings = resolve(FLIGHTDECK_COMPRESSION="brotli")

    assert config.compression == "auto"
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_COMPRESSION='brotli' is not auto, "
                        "gzip or none; using 'auto' instead"]


# -- never raises -----------------------------------------------------------------

_VARIABLES = ["FLIGHTDECK_SERVER", "FLIGHTDECK_TOKEN", "FLIGHTDECK_ENABLED",
              "FLIGHTDECK_SESSION_ID", "FLIGHTDECK_AGENT_NAME", "FLIGHTDECK_AGENT_TYPE",
              "FLIGHTDECK_HOSTNAME", "FLIGHTDECK_CAPTURE_PROMPTS", "FLIGHTDECK_PROVIDERS",
              "FLIGHTDECK_LOG_LEVEL", "FLIGHTDECK_SHUTDOWN_TIMEOUT", "FLIGHTDECK_SPOOL",
              "FLIGHTDECK_SPOOL_DIR", "FLIGHTDECK_ALLOW_INSECURE", "AGENT_FLAVOR", "AGENT_TYPE",
              "FLIGHTDECK_INJECT_STREAM_USAGE", "FLIGHTDECK_MAX_QUEUE_BYTES",
              "FLIGHTDECK_COMPRESSION"]


@settings(max_examples=300, deadline=None)
@given(env=st.dictionaries(st.sampled_from(_VARIABLES),
                           st.text(alphabet=string.printable + "é\x00{}", max_size=40)),
       token=st.text(alphabet=string.printable + "é\x00", max_size=20),
       token_prefix=st.sampled_from(["", "Bearer ", " ", "\n"]))
def test_any_environment_resolves_without_raising_or_leaking_the_token(
        env: dict[str, str], token: str, token_prefix: str) -> None:
    env["FLIGHTDECK_TOKEN"] = f"{token_prefix}tok-SECRET-{token}"

    config, warnings = resolve_config(env)

    assert isinstance(config, Config)
    assert not any("SECRET" in w for w in warnings)
    assert "SECRET" not in repr(config)
    assert config.enabled is False or config.server.startswith(("http://", "https://"))
