"""test_targets.py - the one reading of request targets, authorities and auth schemes
(src/http/target.c, auth.c) as the proxy, the recorder and the rules use it: each test here is
a case where their copies disagreed before, through the real binary."""
import signal
import sqlite3
import time

import peers
from peers import OK, get, reply_with, response


def db(path):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    c.row_factory = sqlite3.Row
    return c


def stop(px):
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0


def test_the_capture_reads_a_challenge_list_as_the_proxy_does(shunt, origin, tmp_path):
    """"Negotiate, NTLM": the recorder kept "Negotiate," (it cut at a space only) where the
    proxy, its rules and Lua saw "Negotiate"."""
    path = tmp_path / "c.db"
    rules = tmp_path / "r.lua"
    rules.write_text('function on_response(s) s.response.headers:set("X-Scheme", s.conn.auth_scheme) end\n')
    origin.handler = reply_with(response(b"401 Unauthorized", [b"WWW-Authenticate: Negotiate, NTLM"]))
    px = shunt("--capture", str(path), "--rules", str(rules))
    with px.client() as c:
        r = c.exchange(get(origin.host, "/"))
        assert r.status == 401 and r.get("X-Scheme") == b"Negotiate"
    stop(px)
    with db(path) as c:
        assert c.execute("SELECT auth_scheme FROM connections").fetchone()[0] == "Negotiate"


def test_a_refused_target_with_user_info_is_recorded_with_its_host(shunt, origin, tmp_path):
    """The proxy refuses user info (400); the recorder kept "user@host" as the host (which ~d
    and the views then showed), the importer cut it off. Now both: the host alone."""
    path = tmp_path / "c.db"
    px = shunt("--capture", str(path))
    with px.client() as c:
        c.send(b"GET http://User@Example.test:81/x HTTP/1.1\r\nHost: example.test\r\n\r\n")
        assert c.response().status == 400
    stop(px)
    with db(path) as c:
        row = c.execute("SELECT host, status FROM exchanges").fetchone()
    assert (row["host"], row["status"]) == ("example.test", 400)


def test_a_host_with_bytes_no_authority_allows_is_a_bad_request(shunt):
    """RFC 9112 3.2 / RFC 3986 3.2.2: the proxy took any host but '@', '/' and '\\' and tried
    to resolve it (a 502); the target is malformed, a 400 that says why."""
    px = shunt()
    with px.client() as c:
        c.send(b'GET http://exa"mple.test/ HTTP/1.1\r\nHost: x\r\n\r\n')
        r = c.response()
    assert r.status == 400, r.raw


def test_a_mapped_url_may_write_its_port_with_leading_zeros(shunt, origins):
    """The rules refused a port of more than five digits that the proxy itself accepts
    (RFC 3986 3.2.3: port = *DIGIT): one reading now, and the request goes there."""
    a, b = origins(), origins()
    px = shunt("--map-remote", rf"|~u /api|127\.0\.0\.1:{a.port}/|127.0.0.1:0000{b.port}/")
    with px.client() as c:
        assert c.exchange(get(a.host, "/api")).raw == OK
    assert bytes(b.conns[0].received).startswith(b"GET /api HTTP/1.1\r\n")
    assert not a.conns
