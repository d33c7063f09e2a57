"""The local ingest collector: a Flightdeck-compatible ingestion server on stdlib
``http.server`` and ``sqlite3``, for the demo, the tests and users without a
Flightdeck deployment. Run it with ``flightdeck-sensor collect``.

Modules: ``_validate`` (Flightdeck's event rules), ``_store`` (SQLite),
``_server`` (HTTP), ``_cli`` (commands), ``_report`` (the read side's text);
the control plane: ``_control`` (directives, policies, registered directives),
``_control_api`` (its request bodies, checked), ``_control_cli`` and
``_control_commands`` (stop, degrade, budget, directive, directives).
"""
