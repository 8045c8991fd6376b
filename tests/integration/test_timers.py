"""test_timers.py - a session's waits are kept apart: a rule's hold (s:delay), the wait for
the upstream (connect, response) and the wait for the client (header, idle, linger) each
have a timer of their own, so that one does not overwrite another. Before, one timer
served them all, and upstream bytes arriving while a rule held the response re-armed it
as the response timeout: the hold was forgotten, and the client got a 504 instead of the
response."""
import time

from peers import get


def rules_file(tmp_path, text):
    p = tmp_path / "rules.lua"
    p.write_text(text)
    return p


def test_response_bytes_during_a_hold_do_not_cancel_it(shunt, origin, tmp_path):
    """The head arrives, a rule holds it 400 ms; the body comes 100 ms later, in a read of
    its own. The hold still ends on time, and the response goes out whole."""
    def handler(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        time.sleep(0.1)
        conn.send(b"body")
        time.sleep(1.5)  # the connection stays open past the hold

    origin.handler = handler
    rules = rules_file(tmp_path, "function on_response(s) s:delay(400) end\n")
    px = shunt("--rules", rules, "--response-timeout", "3")
    with px.client() as c:
        t0 = time.monotonic()
        c.send(get(origin.host, "/"))
        r = c.response()
        took = time.monotonic() - t0
    assert r.status == 200 and r.body == b"body"
    assert 0.35 < took < 2.5, took  # the hold, not the response timeout


def test_request_body_during_a_held_response_does_not_cancel_the_hold(shunt, origin, tmp_path):
    """The server answers before the request body is whole (as IIS does with a challenge);
    a rule holds that answer; the client's body keeps coming. The hold still ends on time."""
    def handler(conn):
        conn.recv_head()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(1.5)  # the connection stays open past the hold

    origin.handler = handler
    rules = rules_file(tmp_path, "function on_response(s) s:delay(400) end\n")
    px = shunt("--rules", rules, "--response-timeout", "3")
    with px.client() as c:
        t0 = time.monotonic()
        c.send(get(origin.host, "/", method=b"POST", extra=b"Content-Length: 10\r\n"))
        time.sleep(0.15)
        c.send(b"12345")
        time.sleep(0.1)
        c.send(b"67890")
        r = c.response()
        took = time.monotonic() - t0
    assert r.status == 200 and r.body == b"ok"
    assert 0.35 < took < 2.5, took
