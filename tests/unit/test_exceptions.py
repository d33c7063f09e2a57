"""The exceptions the sensor raises into the program survive what programs do
with exceptions: pickling (a pool worker's exception goes to its parent so)."""

from __future__ import annotations

import pickle

import flightdeck_sensor
from flightdeck_sensor._exceptions import BudgetExceededError, DirectiveError


def test_a_directive_error_pickles_with_its_action_and_reason() -> None:
    error = pickle.loads(pickle.dumps(DirectiveError("shutdown", "maintenance")))
    assert (type(error), error.action, error.reason, str(error)) == (
        DirectiveError, "shutdown", "maintenance", "Directive shutdown: maintenance")


def test_a_budget_error_pickles_with_its_figures() -> None:
    error = pickle.loads(pickle.dumps(BudgetExceededError("s-1", 95, 100)))
    assert (error.session_id, error.tokens_used, error.token_limit) == ("s-1", 95, 100)


def test_tracebacks_name_the_exceptions_where_the_program_imports_them() -> None:
    assert DirectiveError.__module__ == "flightdeck_sensor"
    assert flightdeck_sensor.DirectiveError is DirectiveError
    assert flightdeck_sensor.BudgetExceededError is BudgetExceededError
