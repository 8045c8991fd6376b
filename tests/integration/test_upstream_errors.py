"""Upstream failures get a short text answer naming the cause: 502 for a refused, reset or
unanswered connection, 504 when the connect or the response times out. The one exception is
the idle-timeout race: a reused connection that the server closes on the request in flight
is mirrored (FIN for FIN, RST for RST), so that the client retries as it would direct."""
import sqlite3
import threading
import time

import pytest

import peers
from peers import get


def _error_response(px, host, path="/"):
    with px.client() as c:
        t0 = time.monotonic()
        resp = c.exchange(get(host, path))
        return resp, time.monotonic() - t0


def test_refused_connection_gets_502_naming_the_cause(shunt):
    px = shunt()
    host = f"127.0.0.1:{peers.free_port()}"
    resp, _ = _error_response(px, host)
    assert resp.status == 502, resp
    assert resp.get("content-type").startswith(b"text/plain")
    assert b"refused" in resp.body.lower(), resp


def test_origin_reset_before_answering_gets_502(shunt, origin):
    def read_then_reset(conn):
        conn.recv_request()
        conn.reset()

    origin.handler = read_then_reset
    px = shunt()
    resp, _ = _error_response(px, origin.host)
    assert resp.status == 502, resp
    assert b"reset" in resp.body.lower(), resp


def test_origin_closing_before_answering_gets_502(shunt, origin):
    def read_then_close(conn):
        conn.recv_request()
        conn.close()

    origin.handler = read_then_close
    px = shunt()
    resp, _ = _error_response(px, origin.host)
    assert resp.status == 502, resp
    assert resp.body


def test_connect_timeout_gets_504(shunt):
    hole = peers.BlackHole()
    try:
        px = shunt("--connect-timeout", "1")
        resp, took = _error_response(px, hole.host)
        assert resp.status == 504, resp
        assert b"connect" in resp.body.lower() and b"time" in resp.body.lower(), resp
        assert 0.5 < took < 5
    finally:
        hole.close()


def test_response_timeout_gets_504(shunt, origin):
    released = threading.Event()

    def never_answer(conn):
        conn.recv_request()
        released.wait(peers.WAIT)

    origin.handler = never_answer
    try:
        px = shunt("--response-timeout", "1")
        resp, took = _error_response(px, origin.host)
        assert resp.status == 504, resp
        assert b"respon" in resp.body.lower(), resp  # "did not respond within 1 s"
        assert 0.5 < took < 5
    finally:
        released.set()


def _answer_once_then(end):
    """An origin handler: answers the first request of a connection, then reads the second
    and ends the connection without a word (end: "close" or "reset"), as a server whose
    keep-alive timer fired just as the request arrived."""
    def handler(conn):
        conn.recv_request()
        conn.send(peers.OK)
        conn.recv_request()
        conn.close() if end == "close" else conn.reset()
    return handler


@pytest.mark.parametrize("end,how", [("close", "FIN"), ("reset", "RST")])
def test_reused_connection_closed_without_answer_is_mirrored_not_502(shunt, origin, tmp_path,
                                                                     end, how):
    """The idle-timeout race: a server closing a reused connection on the request in flight.
    A client talking to the server sees the close and retries on a new connection (RFC 9112
    9.3.1); a 502 would stop that. The proxy mirrors it (FIN for FIN, RST for RST), records
    the exchange with no response and the cause, and the retry works."""
    origin.handler = _answer_once_then(end)
    cap = tmp_path / "race.db"
    px = shunt("--capture", cap)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/a")).raw == peers.OK
        c.send(get(origin.host, "/b"))
        assert c.wait_eof() == (b"", how)
    with px.client() as c:  # the client's retry, on a new connection
        assert c.exchange(get(origin.host, "/b")).raw == peers.OK
    assert px.stop() == []
    with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT e.conn_id, e.path, e.status, e.error, c.closer, c.close_how "
                          "FROM exchanges e JOIN connections c ON c.id = e.conn_id "
                          "ORDER BY e.conn_id, e.idx").fetchall()
    verb = "closed" if end == "close" else "reset"
    assert rows[:2] == [(1, "/a", 200, None, "server", how),
                        (1, "/b", None, f"server {verb} the reused connection without "
                         "responding", "server", how)], rows
    assert [r[1:3] for r in rows[2:]] == [("/b", 200)], rows


@pytest.mark.parametrize("end", ["close", "reset"])
def test_new_connection_closed_without_answer_still_gets_502(shunt, origin, end):
    """On a new connection the same close is no race but a failure: 502 naming it."""
    def handler(conn):
        conn.recv_request()
        conn.close() if end == "close" else conn.reset()
    origin.handler = handler
    px = shunt()
    with px.client() as c:
        r = c.exchange(get(origin.host, "/a"))
        assert r.status == 502 and r.body.startswith(b"shunt: "), r


def test_a_close_after_100_continue_is_no_race_but_a_502(shunt, origin):
    """The server answered (100 Continue) and then closed: not the idle race (not a byte
    of answer), so the client gets the proxy's 502 naming it, not a silent close."""
    def handler(conn):
        conn.recv_request()
        conn.send(peers.OK)
        conn.r.read_until(b"\r\n\r\n")  # the second request's head, its body held back
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.close()
    origin.handler = handler
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/a")).raw == peers.OK
        c.send(f"POST http://{origin.host}/b HTTP/1.1\r\nHost: {origin.host}\r\n"
               "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n".encode())
        interim, final = c.final_response()
        assert [m.status for m in interim] == [100]
        assert final is not None and final.status == 502, final


def test_the_raced_exchange_is_recorded_when_the_server_closes(shunt, origin, tmp_path):
    """The race's exchange ends when the server closed, not when the client closes its side
    (a client may hold a dead socket for a while): the capture has it while the client still
    holds the connection."""
    origin.handler = _answer_once_then("close")
    cap = tmp_path / "race.db"
    px = shunt("--capture", cap)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/a")).raw == peers.OK
        c.send(get(origin.host, "/b"))
        assert c.wait_eof() == (b"", "FIN")
        # The proxy gives up on a client that keeps a closed connection after 5 s (its
        # linger), which would record the exchange too: poll for less than that, so that
        # only the exchange ending with the server's close can pass.
        deadline = time.monotonic() + 2.5
        rows = []
        while time.monotonic() < deadline:  # the store writes in batches: poll
            with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as db:
                rows = db.execute("SELECT path, error FROM exchanges WHERE path = '/b'"
                                  " AND NOT flags & 16").fetchall()  # ended, not pending
            if rows:
                break
            time.sleep(0.05)
        assert rows == [("/b", "server closed the reused connection without responding")]
    assert px.stop() == []


# ------------------------------------------------------------------ the capture


def _rows(path, sql):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _assert_recorded_as_received(path, resp):
    """The exchange's row holds the answer the client received from shunt: no server head,
    the head and body as sent, flag 64 (and 2), no upstream; the error is the body's text."""
    (e,) = _rows(path, "SELECT * FROM exchanges")
    bodies = _rows(path, "SELECT direction, data FROM bodies")
    assert e["status"] == resp.status and e["resp_head"] is None and e["upstream_id"] is None
    assert bytes(e["resp_head_sent"]) + resp.body == resp.raw
    assert [(b["direction"], bytes(b["data"])) for b in bodies] == [(1, resp.body)]
    assert e["flags"] & 64 and e["flags"] & 2 and not e["flags"] & 16
    assert resp.body == b"shunt: " + e["error"].encode() + b"\n"  # whole
    return e


def test_a_refused_upstream_is_recorded_with_the_502_the_client_got(shunt, tmp_path):
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap)
    resp, _ = _error_response(px, f"127.0.0.1:{peers.free_port()}")
    assert resp.status == 502
    assert px.stop() == []
    e = _assert_recorded_as_received(cap, resp)
    assert "refused" in e["error"]


def test_a_connect_timeout_is_recorded_with_the_504_the_client_got(shunt, tmp_path):
    cap = tmp_path / "c.db"
    hole = peers.BlackHole()
    try:
        px = shunt("--capture", cap, "--connect-timeout", "1")
        resp, _ = _error_response(px, hole.host)
        assert resp.status == 504
        assert px.stop() == []
    finally:
        hole.close()
    e = _assert_recorded_as_received(cap, resp)
    assert "timed out" in e["error"]


def test_an_unreadable_response_is_recorded_with_the_502_the_client_got(shunt, origin, tmp_path):
    """The server's bytes never reached the client: the capture says what did."""
    origin.handler = peers.reply_with(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap)
    resp, _ = _error_response(px, origin.host)
    assert resp.status == 502
    assert px.stop() == []
    e = _assert_recorded_as_received(cap, resp)
    assert "cannot be parsed" in e["error"]
