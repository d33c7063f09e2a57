"""FLIGHTDECK_EXPORT and OpenTelemetry's exporter variables, with their
documented precedence: a signal-specific variable beats the generic one; the
generic endpoint gets /v1/traces appended, the signal one is used as is. A bad
value gives one warning and the program goes on; a header value never shows."""

from __future__ import annotations

import pytest

from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._otel_env import parse_pairs, percent_decode

SERVER = {"FLIGHTDECK_SERVER": "http://127.0.0.1:1", "FLIGHTDECK_TOKEN": "tok"}


def test_flightdeck_is_the_default_export_and_sends_nothing_to_otlp() -> None:
    config, warnings = resolve_config({**SERVER, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})

    assert (config.export, config.enabled, config.to_otlp, config.otlp_endpoint) == (
        "flightdeck", True, False, "")
    assert warnings == []


def test_otlp_alone_turns_the_sensor_on_without_a_server() -> None:
    config, warnings = resolve_config({"FLIGHTDECK_EXPORT": "otlp",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/"})

    assert (config.enabled, config.server, config.otlp_endpoint) == (
        True, "", "http://127.0.0.1:4318/v1/traces")
    assert warnings == []  # no token asked for: nothing goes to Flightdeck


def test_otlp_alone_ignores_a_flightdeck_server() -> None:
    config, _ = resolve_config({**SERVER, "FLIGHTDECK_EXPORT": "OTLP"})

    assert (config.server, config.to_otlp) == ("", True)


def test_without_an_endpoint_otlp_goes_to_the_specifications_default() -> None:
    config, _ = resolve_config({"FLIGHTDECK_EXPORT": "otlp"})

    assert config.otlp_endpoint == "http://localhost:4318/v1/traces"


def test_the_traces_endpoint_beats_the_generic_one_and_is_used_as_is() -> None:
    config, _ = resolve_config({
        "FLIGHTDECK_EXPORT": "both", **SERVER,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:6006/custom/traces"})

    assert config.otlp_endpoint == "http://127.0.0.1:6006/custom/traces"
    assert config.server == "http://127.0.0.1:1/ingest"


def test_signal_specific_headers_and_protocol_beat_the_generic_ones() -> None:
    config, _ = resolve_config({
        "FLIGHTDECK_EXPORT": "otlp",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})

    assert (config.otlp_headers, config.otlp_protocol) == ((("b", "2"),), "http/json")


def test_headers_are_percent_decoded_and_their_names_lower_cased() -> None:
    assert parse_pairs("Api-Key=a%20b%3Dc , x=%E2%9C%93", header_names=True) == (
        [("api-key", "a b=c"), ("x", "\u2713")], [])


def test_a_malformed_header_is_named_without_its_value() -> None:
    config, warnings = resolve_config({"FLIGHTDECK_EXPORT": "otlp",
                                       "OTEL_EXPORTER_OTLP_HEADERS": "good=1,bad key=s3cret,"
                                                                     "worse=s3cret%G1"})

    assert config.otlp_headers == (("good", "1"),)
    assert len(warnings) == 2 and "'worse'" in warnings[1]
    assert all("s3cret" not in warning for warning in warnings)


def test_header_values_never_appear_in_repr_or_as_dict() -> None:
    config, _ = resolve_config({"FLIGHTDECK_EXPORT": "otlp",
                                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret"})

    assert "s3cret" not in repr(config) + str(config.as_dict())
    assert config.as_dict()["otlp_headers"] == ["authorization: <set, 13 characters>"]


@pytest.mark.parametrize(("env", "expected"), [
    ({"FLIGHTDECK_EXPORT": "zipkin", **SERVER}, "FLIGHTDECK_EXPORT='zipkin' is not flightdeck"),
    ({"FLIGHTDECK_EXPORT": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not http/protobuf or http/json"),
    ({"FLIGHTDECK_EXPORT": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
     "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317' is not an http:// or https:// URL"),
])
def test_a_bad_value_gives_one_clear_warning(env: dict[str, str], expected: str) -> None:
    _, warnings = resolve_config(env)

    assert len(warnings) == 1 and expected in warnings[0], warnings


def test_a_bad_endpoint_alone_leaves_the_sensor_off() -> None:
    config, warnings = resolve_config({"FLIGHTDECK_EXPORT": "otlp",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"})

    assert not config.enabled and "nothing is sent to OTLP" in warnings[0]


def test_both_without_a_server_sends_to_otlp_and_says_so() -> None:
    config, warnings = resolve_config({"FLIGHTDECK_EXPORT": "both"})

    assert (config.enabled, config.server, config.to_otlp) == (True, "", True)
    assert any("OTLP only" in warning for warning in warnings)


def test_service_name_beats_the_resource_attributes_which_beat_the_flavor() -> None:
    named, _ = resolve_config({"FLIGHTDECK_EXPORT": "otlp", "OTEL_SERVICE_NAME": "svc",
                               "OTEL_RESOURCE_ATTRIBUTES": "service.name=res,team=a%2Cb"})
    from_resource, _ = resolve_config({"FLIGHTDECK_EXPORT": "otlp",
                                       "OTEL_RESOURCE_ATTRIBUTES": "service.name=res"})
    default, _ = resolve_config({"FLIGHTDECK_EXPORT": "otlp", "AGENT_FLAVOR": "triage"})

    assert dict(named.otlp_resource) == {"service.name": "svc", "team": "a,b"}
    assert dict(from_resource.otlp_resource)["service.name"] == "res"
    assert dict(default.otlp_resource)["service.name"] == "triage"


@pytest.mark.parametrize("text", ["%", "%4", "%zz", "%ff"])
def test_a_malformed_percent_encoding_is_refused(text: str) -> None:
    assert percent_decode(text) is None
