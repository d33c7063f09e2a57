"""``flightdeck-sensor doctor`` against the real collector and small fake servers (the
.pth itself is checked in fresh virtualenvs by tests/e2e/test_pth_startup.py).

doctor says OK, exit 0, only when events from this environment would arrive."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.doctor_servers import DripServer
from fakes.ingest_server import IngestServer, Reply
from fakes.otlp_receiver import OtlpReceiver
from fixtures.collector import CollectorProcess
from flightdeck_sensor import _doctor
from flightdeck_sensor._doctor import KNOWN_VARIABLES, diagnose, mask_secrets, render

SRC = Path(_doctor.__file__).parent


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``flightdeck-sensor doctor`` in a child process with exactly these FLIGHTDECK_* vars."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    child.update(env)
    return subprocess.run([sys.executable, "-m", "flightdeck_sensor", "doctor", *args],
                          capture_output=True, text=True, env=child, timeout=60)


@pytest.fixture
def good_env(collector: CollectorProcess, tmp_path: Path) -> dict[str, str]:
    return {**collector.env(), "FLIGHTDECK_SPOOL_DIR": str(tmp_path / "spool")}


def test_all_good_says_ok_and_exits_0(good_env: dict[str, str],
                                      collector: CollectorProcess) -> None:
    result = doctor(good_env)

    assert result.returncode == 0, result.stdout
    assert "verdict      OK" in result.stdout
    assert f"POST {collector.ingest_url}/v1/events -> HTTP 400" in result.stdout
    assert collector.events() == []  # the token check stored nothing
    assert collector.token not in result.stdout + result.stderr
    assert not list(Path(good_env["FLIGHTDECK_SPOOL_DIR"]).parent.glob("**/.doctor-*"))


def test_live_server_report_as_data(good_env: dict[str, str],
                                    collector: CollectorProcess) -> None:
    report = diagnose(good_env, timeout=5)

    server = report["server"]
    assert server["health"]["status"] == 200
    assert server["health"]["url"] == f"{collector.ingest_url}/health"
    assert server["auth"]["status"] == 400 and server["problem"] is None
    assert report["environment"]["FLIGHTDECK_TOKEN"] == f"<set, {len(collector.token)} characters>"
    assert collector.token not in json.dumps(report, default=str) + render(report)
    assert report["spool"]["enabled"] is True and report["spool"]["writable"] is True


def test_server_down_is_a_problem(tmp_path: Path) -> None:
    result = doctor({"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "t",
                     "FLIGHTDECK_SPOOL_DIR": str(tmp_path)})

    assert result.returncode == 1
    assert "would NOT arrive" in result.stdout
    assert "the server does not answer at http://127.0.0.1:9/ingest" in result.stdout


def test_a_refused_token_is_a_problem(good_env: dict[str, str],
                                      collector: CollectorProcess) -> None:
    result = doctor({**good_env, "FLIGHTDECK_TOKEN": "not-the-token"})

    assert result.returncode == 1
    assert f"POST {collector.ingest_url}/v1/events answered HTTP 401: the token was refused" \
        in result.stdout
    assert "not-the-token" not in result.stdout


def test_https_to_an_http_server_is_a_problem(good_env: dict[str, str],
                                              collector: CollectorProcess) -> None:
    result = doctor({**good_env, "FLIGHTDECK_SERVER": f"https://127.0.0.1:{collector.port}"})

    assert result.returncode == 1
    assert f"the server does not answer at https://127.0.0.1:{collector.port}/ingest (SSL" \
        in result.stdout


def test_an_unwritable_spool_is_a_problem(good_env: dict[str, str], tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")

    result = doctor({**good_env, "FLIGHTDECK_SPOOL_DIR": str(not_a_directory)})

    assert result.returncode == 1
    assert f"the spool directory {not_a_directory}/u" in result.stdout
    assert "cannot be written" in result.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_a_spool_without_write_permission_is_a_problem(good_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    result = doctor({**good_env, "FLIGHTDECK_SPOOL_DIR": str(locked)})

    assert result.returncode == 1 and "cannot be written" in result.stdout


def test_secrets_are_masked_and_a_mistyped_name_gets_a_suggestion(
        collector: CollectorProcess, tmp_path: Path) -> None:
    env = {"FLIGHTDECK_SERVER": f"http://alice:hunter2@127.0.0.1:{collector.port}",
           "FLIGHTDECK_TOKN": "ftd_mistyped_secret_1",
           "FLIGHTDECK_API_KEY": "plain-key-secret-2",
           "FLIGHTDECK_AGENT_NAME": "sk-provider-secret-3",
           "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}

    for result in (doctor(env), doctor(env, "--json")):
        output = result.stdout + result.stderr
        assert result.returncode == 1  # no token: the collector refuses
        assert not re.search(r"hunter2|secret-[123]|secret_1", output), output
        assert "did you mean FLIGHTDECK_TOKEN?" in output
        assert "FLIGHTDECK_TOKEN is not set" in output


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abc.def", "key sk-proj-abc123", "token ftd_live_XYZ",
    "https://u:p@host/x"])
def test_mask_secrets_hides_secret_looking_text(text: str) -> None:
    masked = mask_secrets(text)

    assert "***" in masked
    assert not any(secret in masked for secret in ("abc.def", "abc123", "XYZ", "u:p@"))


def test_a_redirect_is_not_followed_and_its_location_is_shown_sanitized(
        tmp_path: Path) -> None:
    with IngestServer() as server:
        location = f"http://user:hunter2@127.0.0.1:{server.port}/elsewhere\x1b[2J"
        server.script(Reply(302, b"", headers={"Location": location}))

        result = doctor({"FLIGHTDECK_SERVER": server.url, "FLIGHTDECK_TOKEN": "t",
                         "FLIGHTDECK_SPOOL_DIR": str(tmp_path)})

        assert server.paths() == ["/ingest/v1/events"]
    assert result.returncode == 1
    assert (f"answered HTTP 302, a redirect to http://***@127.0.0.1:{server.port}/elsewhere"
            "\\x1b[2J: the sensor does not follow redirects") in result.stdout
    assert "hunter2" not in result.stdout and "\x1b" not in result.stdout


def test_a_server_that_drips_its_answer_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    with DripServer() as server:
        result = doctor({"FLIGHTDECK_SERVER": server.url, "FLIGHTDECK_TOKEN": "t",
                         "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}, "--timeout", "1")

    assert result.returncode == 1
    assert "(no complete answer within 1 s)" in result.stdout


def test_every_warning_is_shown_at_once(tmp_path: Path) -> None:
    env = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "tok-SECRET",
           "FLIGHTDECK_SHUTDOWN_TIMEOUT": "soon", "FLIGHTDECK_AGENT_TYPE": "robot",
           "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}

    report = diagnose(env, timeout=0.5)

    assert sorted(report["warnings"]) == [
        "FLIGHTDECK_AGENT_TYPE='robot' is not 'production' or 'coding'; using 'production' "
        "instead",
        "FLIGHTDECK_SHUTDOWN_TIMEOUT='soon' is not a number of seconds >= 0; using 2.0 instead"]
    assert "  - FLIGHTDECK_AGENT_TYPE='robot'" in render(report)


def test_unset_server_is_a_reason_the_sensor_would_not_run() -> None:
    report = diagnose({}, timeout=0.5)

    assert "FLIGHTDECK_SERVER is not set: the sensor is off" in report["problems"]
    assert report["server"] is None


def test_insecure_server_is_a_reason_the_sensor_would_not_run() -> None:
    report = diagnose({"FLIGHTDECK_SERVER": "http://flightdeck.example.com",
                       "FLIGHTDECK_TOKEN": "t"}, timeout=0.5)

    assert "the configuration turned the sensor off (see the warnings)" in report["problems"]
    assert "plain http to a non-local host" in report["warnings"][0]


def test_json_output_from_the_command_line(good_env: dict[str, str],
                                           collector: CollectorProcess) -> None:
    result = doctor(good_env, "--json")

    report = json.loads(result.stdout)
    assert report["server"]["health"]["status"] == 200 and report["problems"] == []
    assert result.returncode == 0
    assert collector.token not in result.stdout + result.stderr


def test_known_variables_name_every_variable_the_package_reads() -> None:
    read = {name for path in SRC.rglob("*.py")
            for name in re.findall(r"FLIGHTDECK_[A-Z_]+[A-Z]", path.read_text())}

    assert read <= set(KNOWN_VARIABLES)


def test_otlp_export_is_checked_with_an_empty_export_and_its_headers_never_shown(
        otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    env = {"FLIGHTDECK_EXPORT": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
           "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k3y-s3cret",
           "FLIGHTDECK_SPOOL_DIR": str(tmp_path / "spool")}

    result = doctor(env)

    assert result.returncode == 0, result.stdout
    assert f"otlp         POST {otlp_receiver.url}/v1/traces -> HTTP 200" in result.stdout
    assert otlp_receiver.requests[0].headers["x-api-key"] == "k3y-s3cret"
    assert "k3y-s3cret" not in result.stdout + result.stderr


def test_an_otlp_endpoint_that_refuses_is_a_problem(tmp_path: Path) -> None:
    with OtlpReceiver(Reply(404, b"")) as receiver:
        result = doctor({"FLIGHTDECK_EXPORT": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                         "FLIGHTDECK_SPOOL_DIR": str(tmp_path / "spool")})

    assert result.returncode == 1
    assert "answered HTTP 404 to an empty export" in result.stdout
