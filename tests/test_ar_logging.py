"""`ar` logs like the services (JSON lines on stderr), at the level asked for."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from ar.main import app


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:], root.level = handlers, level


def test_the_log_level_option_sets_the_root_logger_and_its_json_handler(
    root_logger_restored: logging.Logger,
) -> None:
    root_logger_restored.handlers.clear()  # as in a fresh `ar` process (pytest adds its own)
    result = CliRunner().invoke(
        app, ["--log-level", "info", "auth", "token", "--tenant", "acme", "--scope", "x:read"]
    )
    assert result.exit_code == 0, result.output
    assert root_logger_restored.level == logging.INFO
    record = logging.LogRecord("ar.test", logging.INFO, __file__, 1, "rebuilt %d", (3,), None)
    line = json.loads(root_logger_restored.handlers[0].format(record))
    assert line["message"] == "rebuilt 3" and line["service"] == "ar"


def test_an_unknown_log_level_is_refused() -> None:
    result = CliRunner().invoke(
        app, ["--log-level", "loud", "auth", "token", "--tenant", "a"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert "one of DEBUG, INFO, WARNING, ERROR" in result.stderr


def test_a_host_that_configured_logging_keeps_it(root_logger_restored: logging.Logger) -> None:
    own = logging.NullHandler()
    root_logger_restored.handlers[:] = [own]
    root_logger_restored.setLevel(logging.ERROR)
    result = CliRunner().invoke(
        app, ["--log-level", "debug", "auth", "token", "--tenant", "acme", "--scope", "x:read"]
    )
    assert result.exit_code == 0, result.output
    assert root_logger_restored.handlers == [own]
    assert root_logger_restored.level == logging.ERROR
