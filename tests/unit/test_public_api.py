"""The package's public names: imported lazily (``import flightdeck_sensor``
stays cheap), and the two small types of the published API."""

from __future__ import annotations

import json
import subprocess
import sys

import flightdeck_sensor
from flightdeck_sensor import Provider, Status


def test_importing_the_package_loads_none_of_the_public_api_until_a_name_is_used() -> None:
    code = ("import sys, flightdeck_sensor\n"
            "before = sorted(m for m in sys.modules if m.startswith('flightdeck_sensor'))\n"
            "flightdeck_sensor.Provider, flightdeck_sensor.get_status\n"
            "after = sorted(m for m in sys.modules if m.startswith('flightdeck_sensor'))\n"
            "print(before, 'flightdeck_sensor._api' in after, "
            "'flightdeck_sensor._provider_enum' in after)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)

    assert result.stdout.split() == ["['flightdeck_sensor',", "'flightdeck_sensor._version']",
                                     "True", "True"]


def test_every_name_in_all_resolves_and_dir_lists_them() -> None:
    for name in flightdeck_sensor.__all__:
        assert getattr(flightdeck_sensor, name) is not None
    assert set(flightdeck_sensor.__all__) <= set(dir(flightdeck_sensor))


def test_status_is_the_dict_and_reads_the_published_names_as_attributes() -> None:
    status = Status(enabled=True, session_id="s", flavor="f", agent_type="coding",
                    state="blocked", tokens_used_session=950, token_limit=1000, pct_used=95.0)

    assert (status.enabled, status.session_id, status.flavor, status.agent_type, status.state,
            status.tokens_used, status.token_limit, status.pct_used) == (
        True, "s", "f", "coding", "blocked", 950, 1000, 95.0)
    assert json.loads(json.dumps(status)) == dict(status)


def test_provider_members_compare_equal_to_their_names_and_hash_alike() -> None:
    assert Provider.ANTHROPIC == "anthropic"
    assert {Provider.OPENAI, "openai"} == {"openai"}
    assert Provider("litellm") is Provider.LITELLM
