from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, RunningServer, make_config


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path)


@pytest.fixture
def server(config):
    """A running server with two accounts: tatareva@lab.test (admin) and tester@lab.test."""
    running = RunningServer(config).start()
    directory = running.engine.directory
    directory.add_account("tatareva@lab.test", PASSWORD, full_name="Tatareva", admin=True)
    directory.add_account("tester@lab.test", PASSWORD, full_name="Tester")
    yield running
    running.stop()
