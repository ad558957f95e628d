"""A real uvicorn with the api's server options (app/slow_clients.py): a connection whose request
headers do not arrive in time is closed, the first request's or a keep-alive one's; a request
that arrives whole is answered."""

from __future__ import annotations

import socket
import threading

import pytest
import uvicorn

from adapters.settings import Settings
from app.slow_clients import server_options
from tests.support.waiting import wait_until

TIMEOUT_S = 0.5


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    options = server_options(Settings(api_port=free, api_body_timeout_s=TIMEOUT_S))
    server = uvicorn.Server(uvicorn.Config(_app, lifespan="off", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "uvicorn to start")
    yield free
    server.should_exit = True
    thread.join(20)


class _Conn:
    """A raw client socket that never blocks; `closed()` reads what the server sent."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.received = b""

    def closed(self) -> bool:
        try:
            while chunk := self.sock.recv(4096):
                self.received += chunk
            return True
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True

    def trickle_until_closed(self, data: bytes):
        """A predicate: sends one more byte of `data` unless the server has closed."""
        sent = iter(data)

        def step() -> bool:
            if self.closed():
                return True
            self.sock.send(bytes([next(sent)]))  # data keeps arriving, never the end of the headers
            return False
        return step

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


SLOW_HEADERS = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 10_000


def test_a_connection_that_sends_nothing_is_closed(port):
    with _Conn(port) as conn:
        wait_until(conn.closed, 20, "the silent connection to be closed")
        assert conn.received == b""


def test_headers_sent_a_byte_at_a_time_are_closed_at_the_deadline(port):
    with _Conn(port) as conn:
        wait_until(conn.trickle_until_closed(SLOW_HEADERS), 20, "the trickling connection to be closed", interval=0.02)


def test_a_whole_request_is_answered_and_a_slow_next_one_closed(port):
    with _Conn(port) as conn:
        conn.sock.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        wait_until(lambda: conn.received.endswith(b"ok") or conn.closed(), 20, "the answer")
        assert conn.received.startswith(b"HTTP/1.1 200") and conn.received.endswith(b"ok")
        # The keep-alive timer is cancelled by any data: the next request's headers have their deadline too.
        wait_until(conn.trickle_until_closed(SLOW_HEADERS), 20, "the slow keep-alive request to be closed",
                   interval=0.02)


def test_the_server_caps_connections():
    assert server_options(Settings())["limit_concurrency"] > 0
