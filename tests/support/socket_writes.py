"""Count the socket writes redis-py's sync connections make: one per round trip."""

from collections.abc import Callable
from typing import Any

import pytest
from redis.connection import AbstractConnection


def socket_writes(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], Any]) -> int:
    """How many commands or pipelines redis-py sends while `fn` runs."""
    count = [0]
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        count[0] += 1
        send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    try:
        fn()
    finally:
        monkeypatch.undo()
    return count[0]
