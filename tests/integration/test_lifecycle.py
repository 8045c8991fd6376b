"""The -v exchange line, and shutdown: on SIGTERM/SIGINT shunt stops accepting, lets the
exchanges in flight finish within --grace, and exits 0."""
import signal
import socket
import threading
import time

import pytest

import peers
from peers import OK, get, reply_with, response

LOG_RE = (r"conn=(?P<conn>\d+) client=(?P<client>\d+) upstream=(?P<upstream>\d+) idx=(?P<idx>\d+) "
          r"(?P<method>\S+) (?P<url>\S+) (?P<status>\d{3}) bytes=(?P<bytes>\d+) ms=(?P<ms>\d+(\.\d+)?)")


def test_verbose_logs_one_line_per_exchange(shunt, origin):
    origin.handler = reply_with(OK, response(b"404 Not Found", body=b"nope"))
    px = shunt("-v")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/one")).raw == OK
        assert c.exchange(get(origin.host, "/two", b"Content-Length: 3\r\n", method=b"POST", body=b"abc")).status == 404
    (conn,) = origin.wait_conns(1)
    first, second = (m.groupdict() for m in px.wait_stderr(LOG_RE, count=2))
    assert first["conn"] == second["conn"]
    assert first["client"] == second["client"] == str(c.port)
    assert first["upstream"] == second["upstream"] == str(conn.peer_port)
    assert int(second["idx"]) == int(first["idx"]) + 1
    assert (first["method"], first["url"], first["status"]) == ("GET", f"{origin.url}/one", "200")
    assert (second["method"], second["url"], second["status"]) == ("POST", f"{origin.url}/two", "404")
    assert float(first["ms"]) >= 0 and int(first["bytes"]) > 0


def test_verbose_log_tells_client_connections_apart(shunt, origin):
    px = shunt("-v")
    with px.client() as a, px.client() as b:
        a.exchange(get(origin.host, "/a"))
        b.exchange(get(origin.host, "/b"))
    lines = {m.group("url"): m.groupdict() for m in px.wait_stderr(LOG_RE, count=2)}
    la, lb = lines[f"{origin.url}/a"], lines[f"{origin.url}/b"]
    assert la["conn"] != lb["conn"]
    assert (la["client"], lb["client"]) == (str(a.port), str(b.port))
    ports = {c.peer_port for c in origin.conns}
    assert {int(la["upstream"]), int(lb["upstream"])} == ports and len(ports) == 2


def test_no_exchange_lines_without_verbose(shunt, origin):
    px = shunt()
    with px.client() as c:
        c.exchange(get(origin.host, "/"))
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    assert "conn=" not in px.stderr


def _refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # queued on a listener that closed meanwhile: try again
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_accepting_and_finishes_the_exchange_in_flight(shunt, origin, sig):
    release = threading.Event()

    def slow(conn):
        conn.recv_request()
        release.wait(peers.WAIT)
        conn.send(OK)
        conn.recv_request()

    origin.handler = slow
    px = shunt("--grace", "10")
    try:
        with px.client() as c:
            c.send(get(origin.host, "/slow"))
            origin.wait_requests(1)
            px.signal(sig)
            peers.wait_for(lambda: _refuses_connections(px.port), what="the listener to close")
            release.set()
            assert c.response().raw == OK
            assert c.wait_eof()[0] == b""
        assert px.wait_exit() == 0
    finally:
        release.set()


def test_grace_period_bounds_the_wait_for_exchanges_in_flight(shunt, origin):
    release = threading.Event()

    def never(conn):
        conn.recv_request()
        release.wait(peers.WAIT)

    origin.handler = never
    px = shunt("--grace", "1")
    try:
        with px.client() as c:
            c.send(get(origin.host, "/never"))
            origin.wait_requests(1)
            t0 = time.monotonic()
            px.signal(signal.SIGTERM)
            assert px.wait_exit() == 0
            assert 0.5 < time.monotonic() - t0 < 5
    finally:
        release.set()


def test_idle_keepalive_connections_do_not_delay_exit(shunt, origin):
    px = shunt("--grace", "30")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
        t0 = time.monotonic()
        px.signal(signal.SIGTERM)
        assert px.wait_exit() == 0
        assert time.monotonic() - t0 < 5
        assert c.wait_eof()[0] == b""


def test_sigterm_right_after_the_listening_line_exits_0(shunt):
    # Once "listening on" is printed the proxy is up: a SIGTERM from then on is a graceful
    # stop (exit 0), not death by the signal. The window is small: try it 60 times.
    for i in range(60):
        px = shunt()
        px.signal(signal.SIGTERM)
        rc = px.wait_exit()
        assert rc == 0, f"attempt {i}: exit status {rc} ({'killed by SIGTERM' if rc == -signal.SIGTERM else ''})"
