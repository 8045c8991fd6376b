"""test_inflight.py - requests in flight are in the capture while they wait: the exchange's row
is written as soon as the request head is seen (flag 16 pending, no status), and the same row
is completed when the exchange ends. Read with sqlite3 while shunt runs, as a user would
(`shunt sessions` on a live capture reads the same file in WAL mode)."""
import signal
import sqlite3
import threading
import time

import peers
from peers import OK, get, origin_form, reply_with

PENDING = 16


def rows(path, sql, args=()):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    c.row_factory = sqlite3.Row
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def wait_row(path, sql, args=(), timeout=peers.WAIT):
    """The first row of <sql> once there is one (the store thread commits every 20 ms)."""
    return peers.wait_for(lambda: (rows(path, sql, args) or [None])[0], timeout, f"a row of {sql}")


def held_origin(origins):
    """An origin that reads each request and answers OK only once .release is set."""
    release = threading.Event()

    def handler(conn):
        while conn.recv_request() is not None:
            release.wait(peers.WAIT * 2)
            conn.send(OK)

    o = origins(handler)
    o.release = release
    return o


def test_a_request_waiting_for_its_response_is_in_the_capture_while_it_waits(shunt, origins, tmp_path):
    path = tmp_path / "c.db"
    origin = held_origin(origins)
    px = shunt("--capture", path)
    req = get(origin.host, "/slow?x=1", extra=b"Proxy-Connection: keep-alive\r\n")
    with px.client() as c:
        c.send(req)
        origin.wait_requests(1)
        e = wait_row(path, "SELECT * FROM exchanges")
        # the row as it waits: no status, pending, no duration; the request whole
        assert e["status"] is None and e["flags"] & PENDING, dict(e)
        assert e["duration_us"] == 0 and e["resp_head"] is None and e["error"] is None
        assert (e["method"], e["url"], e["host"], e["path"], e["http_version"]) == (
            "GET", f"http://{origin.host}/slow?x=1", "127.0.0.1", "/slow?x=1", "HTTP/1.1")
        assert bytes(e["req_head"]) == req
        assert bytes(e["req_head_sent"]) == bytes(origin.conns[0].requests[0].raw)
        assert e["started_us"] > 1.6e15 and (e["conn_id"], e["idx"]) == (1, 1)
        # the changes made to the request are there already, and say it was routine
        assert e["flags"] & 32 and not e["flags"] & 1
        whats = [r["what"] for r in rows(path, "SELECT what FROM changes WHERE exchange_id = ?", (e["id"],))]
        assert "remove Proxy-Connection" in whats
        # its connection is open, its upstream too
        conn = rows(path, "SELECT * FROM connections")[0]
        assert conn["closed_us"] is None and conn["opened_us"] <= e["started_us"]
        assert rows(path, "SELECT closed_us FROM upstreams")[0]["closed_us"] is None
        first_id = e["id"]
        origin.release.set()
        assert c.response().status == 200
        # the same row, complete
        done = wait_row(path, "SELECT * FROM exchanges WHERE status IS NOT NULL")
        assert done["id"] == first_id and not done["flags"] & PENDING
        assert done["duration_us"] > 0 and bytes(done["resp_head"]) == OK[:-2]
    assert len(rows(path, "SELECT id FROM exchanges")) == 1
    # the request's changes were written once, with the pending row, not again at the end
    whats = [r["what"] for r in rows(path, "SELECT what FROM changes")]
    assert sorted(whats) == sorted(set(whats)), whats


def test_a_request_held_by_a_rule_is_pending_while_held(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    rules = tmp_path / "hold.lua"
    rules.write_text('function on_request(s) if s.request.url:find("/held") then s:delay(1500) end end\n')
    px = shunt("--capture", path, "--rules", rules)
    req = get(origin.host, "/held")
    with px.client() as c:
        c.send(req)
        e = wait_row(path, "SELECT * FROM exchanges", timeout=1.2)
        assert e["status"] is None and e["flags"] & PENDING
        assert e["req_head_sent"] is None  # not sent yet: the rule holds it
        # why it waits is in the capture already
        held = rows(path, "SELECT what, by FROM changes WHERE exchange_id = ?", (e["id"],))
        assert [(r["what"], r["by"]) for r in held] == [("hold the request 1500 ms", "hold.lua")]
        assert e["flags"] & 1  # a rule changed what happens to it
        assert origin.conns == []
        assert c.response().status == 200
    done = wait_row(path, "SELECT * FROM exchanges WHERE NOT flags & ?", (PENDING,))
    assert done["id"] == e["id"] and done["status"] == 200
    assert bytes(done["req_head_sent"]) == origin_form(req)
    whats = [r["what"] for r in rows(path, "SELECT what FROM changes ORDER BY id")]
    assert whats.count("hold the request 1500 ms") == 1
    assert whats.count("request line to origin-form") == 1


def test_a_request_waiting_for_its_upstream_to_connect_is_pending(shunt, tmp_path):
    path = tmp_path / "c.db"
    hole = peers.BlackHole()
    try:
        px = shunt("--capture", path, "--connect-timeout", "2")
        with px.client() as c:
            c.send(get(hole.host, "/"))
            e = wait_row(path, "SELECT * FROM exchanges", timeout=1.5)
            assert e["status"] is None and e["flags"] & PENDING and e["upstream_id"] is None
            assert e["url"] == f"http://{hole.host}/"
            assert c.response().status == 504
        done = wait_row(path, "SELECT * FROM exchanges WHERE status IS NOT NULL")
    finally:
        hole.close()
    assert done["id"] == e["id"] and not done["flags"] & PENDING
    assert done["flags"] & 2 and "timed out" in done["error"]


def test_exchanges_in_flight_at_once_end_in_any_order_each_row_completed_once(shunt, origins, tmp_path):
    """Five connections wait at once; they end in the reverse order. Ids follow the order in
    which the requests came; every row ends complete, once."""
    path = tmp_path / "c.db"
    gates = [threading.Event() for _ in range(5)]

    def handler(conn):
        req = conn.recv_request()
        k = int(req.start.split(b" ")[1].rsplit(b"/", 1)[1])
        gates[k].wait(peers.WAIT * 2)
        conn.send(OK)
        conn.recv_request()

    origin = origins(handler)
    px = shunt("--capture", path)
    clients = []
    for k in range(5):
        c = px.client()
        c.send(get(origin.host, f"/{k}"))
        origin.wait_requests(k + 1)
        clients.append(c)
    peers.wait_for(lambda: len(rows(path, "SELECT id FROM exchanges")) == 5, what="5 pending rows")
    pending = rows(path, "SELECT id, path, flags FROM exchanges ORDER BY id")
    assert [r["path"] for r in pending] == [f"/{k}" for k in range(5)]
    assert all(r["flags"] & PENDING for r in pending)
    for k in reversed(range(5)):
        gates[k].set()
        assert clients[k].response().status == 200
        clients[k].close()
    peers.wait_for(lambda: not rows(path, "SELECT id FROM exchanges WHERE flags & ?", (PENDING,)),
                   what="every row complete")
    done = rows(path, "SELECT id, path, status FROM exchanges ORDER BY id")
    assert [(r["id"], r["path"], r["status"]) for r in done] == [
        (p["id"], p["path"], 200) for p in pending]


def test_an_exchange_in_flight_when_the_proxy_stops_ends_with_the_reason(shunt, origins, tmp_path):
    path = tmp_path / "c.db"
    origin = held_origin(origins)
    px = shunt("--capture", path, "--grace", "0.2")
    c = px.client()
    c.send(get(origin.host, "/hung"))
    origin.wait_requests(1)
    wait_row(path, "SELECT id FROM exchanges")
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    c.close()
    origin.release.set()
    (e,) = rows(path, "SELECT * FROM exchanges")
    assert not e["flags"] & PENDING and e["flags"] & 2 and e["status"] is None
    assert e["error"].startswith("proxy stopping"), e["error"]
    (conn,) = rows(path, "SELECT * FROM connections")
    assert conn["closed_us"] is not None and conn["closer"] == "proxy"


def test_an_exchange_in_flight_when_the_proxy_dies_stays_pending(origins, tmp_path):
    """kill -9: nothing ends the exchange; the capture still shows it, pending, as it was.
    (Not the shunt fixture: its teardown rightly fails a proxy that died by a signal.)"""
    path = tmp_path / "c.db"
    origin = held_origin(origins)
    px = peers.Shunt(["--capture", str(path)])
    c = px.client()
    try:
        c.send(get(origin.host, "/hung"))
        origin.wait_requests(1)
        wait_row(path, "SELECT id FROM exchanges")
    finally:
        px.signal(signal.SIGKILL)
        px.wait_exit()
        c.close()
        origin.release.set()
    (e,) = rows(path, "SELECT * FROM exchanges")
    assert e["flags"] & PENDING and e["status"] is None and e["path"] == "/hung"
    (conn,) = rows(path, "SELECT * FROM connections")
    assert conn["closed_us"] is None
    assert rows(path, "PRAGMA integrity_check")[0][0] == "ok"


def test_a_second_exchange_on_a_connection_waits_visibly_after_a_finished_one(shunt, origins, tmp_path):
    path = tmp_path / "c.db"
    release = threading.Event()

    def handler(conn):
        conn.recv_request()
        conn.send(OK)
        conn.recv_request()
        release.wait(peers.WAIT * 2)
        conn.send(OK)
        conn.recv_request()

    origin = origins(handler)
    px = shunt("--capture", path)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/1")).status == 200
        c.send(get(origin.host, "/2"))
        origin.wait_requests(2)
        second = wait_row(path, "SELECT * FROM exchanges WHERE idx = 2")
        first = rows(path, "SELECT * FROM exchanges WHERE idx = 1")[0]
        assert first["status"] == 200 and not first["flags"] & PENDING
        assert second["status"] is None and second["flags"] & PENDING
        # it went out on the connection the first one used: which one it waits on
        assert second["upstream_id"] == first["upstream_id"] is not None
        release.set()
        assert c.response().status == 200
    done = wait_row(path, "SELECT * FROM exchanges WHERE idx = 2 AND status IS NOT NULL")
    assert done["id"] == second["id"] and done["upstream_id"] == first["upstream_id"]
    assert done["upstream_reused"] == 1
