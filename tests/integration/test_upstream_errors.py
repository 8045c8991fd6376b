"""Upstream failures get a short text answer naming the cause: 502 for a refused, reset or
unanswered connection, 504 when the connect or the response times out."""
import threading
import time

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
