"""Identity (docs/protocol.md, common fields): agent_id, user, hostname, default agent name."""

from __future__ import annotations

import socket
import uuid

from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._identity import agent_id, current_user, default_agent_name, system_hostname
from flightdeck_sensor._session import Session
from flightdeck_sensor.transport._wire import complete_event


def test_agent_id_matches_the_protocol_test_vector() -> None:
    derived = agent_id("coding", "omria", "Omri-PC", "omria@Omri-PC", "claude_code")

    assert derived == "ee76931b-06fa-5da6-a019-5a8237efd496"


def test_agent_id_of_a_sub_agent_appends_the_role() -> None:
    namespace = uuid.UUID("ee22ab58-26fc-54ef-91b4-b5c0a97f9b61")
    expected = uuid.uuid5(namespace, "flightdeck://production/u@h/flightdeck_sensor/u@h/planner")

    assert agent_id("production", "u", "h", "u@h", agent_role="planner") == str(expected)


def test_default_agent_name_is_user_at_hostname() -> None:
    assert default_agent_name("omria", "Omri-PC") == "omria@Omri-PC"


def test_user_comes_from_the_login_variables_first() -> None:
    assert current_user({"USER": "", "LOGNAME": "carol"}) == "carol"


def test_user_falls_back_to_the_password_database() -> None:
    assert current_user({}) != ""


def test_system_hostname_is_what_socket_reports() -> None:
    assert system_hostname() == socket.gethostname()


def test_events_carry_the_identity_of_the_configuration() -> None:
    config, _ = resolve_config({"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "t",
                                "USER": "omria", "FLIGHTDECK_HOSTNAME": "Omri-PC",
                                "FLIGHTDECK_AGENT_TYPE": "coding"})

    event = complete_event(Session(config).build("pre_call", {}))

    assert (event["user"], event["hostname"], event["host"], event["agent_name"]) == (
        "omria", "Omri-PC", "Omri-PC", "omria@Omri-PC")
    assert event["agent_id"] == agent_id("coding", "omria", "Omri-PC", "omria@Omri-PC")
    assert event["client_type"] == "flightdeck_sensor"
