from __future__ import annotations

import pytest

from tests.outbound.stubs import DnsStub, Sink


@pytest.fixture
def sink():
    running = Sink().start()
    yield running
    running.stop()


@pytest.fixture
def dns_stub():
    stub = DnsStub().start()
    yield stub
    stub.stop()
