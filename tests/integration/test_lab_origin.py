"""test_lab_origin.py - `shunt lab origin`: connection-bound Negotiate and NTLM, Basic, the
Server header, HTTP/1.0, close-after, idle timeout, the paths, strict parsing, shutdown.
Raw sockets with the lab's tokens built in labpeers.py; loopback only."""
import socket
import subprocess
import time

from labpeers import (
    auth_param,
    ntlm_authenticate,
    ntlm_negotiate,
    spnego_init,
    spnego_is_final,
)
from peers import SHUNT_BIN, curl


def req(path="/", extra=b"", method=b"GET", version=b"1.1", body=b""):
    return (method + b" " + path.encode() + b" HTTP/" + version + b"\r\nHost: origin.lab\r\n"
            + extra + b"\r\n" + body)


def authz(scheme, token):
    return b"Authorization: " + scheme.encode() + b" " + token.encode() + b"\r\n"


# ----------------------------------------------------------------------------- Negotiate


def test_negotiate_authenticates_the_connection_not_the_request(lab_origin):
    o = lab_origin("--auth", "negotiate")
    with o.client() as c:
        m = c.exchange(req())
        assert m.status == 401
        assert auth_param(m, "Negotiate") == ""
        assert m.get("Server") == b"Microsoft-IIS/6.0"
        m = c.exchange(req(extra=authz("Negotiate", spnego_init("LAB\\alice", "origin.lab"))))
        assert m.status == 200
        assert spnego_is_final(auth_param(m, "Negotiate"))
        # The connection is authenticated: no Authorization any more.
        m = c.exchange(req("/again"))
        assert m.status == 200 and auth_param(m, "Negotiate") is None
        port = c.port
    # A new connection needs a new handshake.
    with o.client() as c2:
        assert c2.exchange(req()).status == 401
    log = o.wait_conn_log(port, "GET /again -> 200")
    assert "Negotiate user LAB\\alice -> 200" in log


def test_negotiate_token_on_unchallenged_connection_fails(lab_origin):
    o = lab_origin("--auth", "negotiate")
    with o.client() as c:
        m = c.exchange(req(extra=authz("Negotiate", spnego_init("alice", "origin.lab"))))
        assert m.status == 401
        assert auth_param(m, "Negotiate") == ""
        port = c.port
    o.wait_log(rf"port {port}: Negotiate token on a connection without challenge -> 401")


def test_negotiate_garbage_token_fails(lab_origin):
    o = lab_origin("--auth", "negotiate")
    with o.client() as c:
        assert c.exchange(req()).status == 401
        for tok in ("!!!!", "YWJj", "TlRMTVNTUAABAAAA", "oQcwBaADCgEA"):
            assert c.exchange(req(extra=authz("Negotiate", tok))).status == 401
        # Still alive and able to authenticate.
        m = c.exchange(req(extra=authz("Negotiate", spnego_init("bob", "h"))))
        assert m.status == 200


# ----------------------------------------------------------------------------- NTLM


def ntlm_handshake(c, user="LAB\\alice", path="/"):
    m = c.exchange(req(path))
    assert m.status == 401 and auth_param(m, "NTLM") == ""
    m = c.exchange(req(path, extra=authz("NTLM", ntlm_negotiate())))
    assert m.status == 401
    t2 = auth_param(m, "NTLM")
    assert t2
    m = c.exchange(req(path, extra=authz("NTLM", ntlm_authenticate(t2, user))))
    return t2, m


def test_ntlm_three_legs_then_the_connection_is_authenticated(lab_origin):
    o = lab_origin("--auth", "ntlm")
    with o.client() as c:
        _, m = ntlm_handshake(c)
        assert m.status == 200
        assert m.body == b"hello from shunt lab origin\n"
        assert c.exchange(req("/status/204")).status == 204
        port = c.port
    log = o.wait_conn_log(port, "GET /status/204 -> 204")
    assert "NTLM negotiate -> challenge" in log
    assert "NTLM authenticate user LAB\\alice -> 200" in log
    with o.client() as c2:
        assert c2.exchange(req()).status == 401


def test_ntlm_authenticate_on_another_connection_fails(lab_origin):
    o = lab_origin("--auth", "ntlm")
    with o.client() as a, o.client() as b:
        m = a.exchange(req(extra=authz("NTLM", ntlm_negotiate())))
        t2 = auth_param(m, "NTLM")
        # b got no CHALLENGE: a's AUTHENTICATE means nothing there.
        m = b.exchange(req(extra=authz("NTLM", ntlm_authenticate(t2, "LAB\\alice"))))
        assert m.status == 401 and auth_param(m, "NTLM") == ""
        # b's own challenge differs from a's: an answer to a's still fails on b.
        m = b.exchange(req(extra=authz("NTLM", ntlm_negotiate())))
        t2b = auth_param(m, "NTLM")
        assert t2b != t2
        m = b.exchange(req(extra=authz("NTLM", ntlm_authenticate(t2, "LAB\\alice"))))
        assert m.status == 401
        # a can still finish its own handshake.
        m = a.exchange(req(extra=authz("NTLM", ntlm_authenticate(t2, "LAB\\alice"))))
        assert m.status == 200
        bport = b.port
    log = o.wait_conn_log(bport, "NTLM authenticate does not answer this connection's challenge -> 401")
    assert "NTLM authenticate on a connection without challenge -> 401" in log
    assert "NTLM authenticate does not answer this connection's challenge -> 401" in log


# ----------------------------------------------------------------------------- Basic


def test_basic_every_request(lab_origin):
    o = lab_origin("--auth", "basic")
    with o.client() as c:
        m = c.exchange(req())
        assert m.status == 401 and m.get("WWW-Authenticate") == b'Basic realm="lab"'
        good = authz("Basic", "YWxpY2U6bGFi")  # alice:lab
        assert c.exchange(req(extra=good)).status == 200
        assert c.exchange(req()).status == 401  # per request, not per connection
        assert c.exchange(req(extra=authz("Basic", "YWxpY2U6bm8="))).status == 401  # alice:no
    r = curl("-u", "bob:lab", "-o", "/dev/null", "-w", "%{http_code}", o.url("/"))
    assert r.stdout == b"200"


# ----------------------------------------------------------------------------- Server header


def test_server_header_default_absent_and_custom(lab_origin):
    for args, want in (((), b"Microsoft-IIS/6.0"), (("--no-server-header",), None),
                       (("--server-header", "Apache/2.4"), b"Apache/2.4")):
        o = lab_origin("--auth", "ntlm", *args)
        with o.client() as c:
            m401 = c.exchange(req())
            assert m401.status == 401 and m401.get("Server") == want
            _, m = ntlm_handshake(c)
            assert m.status == 200 and m.get("Server") == want


# ----------------------------------------------------------------------------- connection policies


def test_http10_closes_unless_keep_alive_asked(lab_origin):
    o = lab_origin("--http10")
    with o.client() as c:
        m = c.exchange(req())
        assert m.start == b"HTTP/1.0 200 OK"
        assert m.get("Connection") == b"close"
        assert c.wait_eof() == (b"", "FIN")
        port = c.port
    o.wait_log(rf"port {port}: closed by server \(http10\)")
    with o.client() as c:
        ka = b"Connection: keep-alive\r\n"
        for _ in range(3):
            m = c.exchange(req("/bytes/5", extra=ka, version=b"1.0"))
            assert m.start == b"HTTP/1.0 200 OK"
            assert m.get("Connection") == b"keep-alive" and m.get("Content-Length") == b"5"
            assert m.body == b"xxxxx"


def test_close_after_n_responses(lab_origin):
    o = lab_origin("--close-after", "2")
    with o.client() as c:
        m = c.exchange(req())
        assert m.status == 200 and m.get("Connection") is None
        m = c.exchange(req())
        assert m.status == 200 and m.get("Connection") == b"close"
        assert c.wait_eof() == (b"", "FIN")
        port = c.port
    o.wait_log(rf"port {port}: closed by server \(close-after\)")


def test_idle_timeout_closes(lab_origin):
    o = lab_origin("--idle-timeout", "0.3")
    with o.client() as c:
        assert c.exchange(req()).status == 200
        t0 = time.monotonic()
        assert c.wait_eof() == (b"", "FIN")
        assert 0.2 < time.monotonic() - t0 < 3
        port = c.port
    o.wait_log(rf"port {port}: closed by server \(idle 0.3s\)")


def test_client_fin_and_reset_are_logged(lab_origin):
    o = lab_origin()
    c = o.client()
    assert c.exchange(req()).status == 200
    c.shutdown_write()
    assert c.wait_eof() == (b"", "FIN")
    c.close()
    d = o.client()
    assert d.exchange(req()).status == 200
    d.reset()
    o.wait_log(rf"port {c.port}: closed by client \(FIN\)")
    o.wait_log(rf"port {d.port}: closed by client \(reset\)")
    assert o.wait_conn_log(c.port, "opened")[0] == "opened"


# ----------------------------------------------------------------------------- paths


def test_paths_bytes_delay_status_and_head(lab_origin):
    o = lab_origin()
    with o.client() as c:
        m = c.exchange(req("/bytes/100000"))
        assert m.status == 200 and m.body == b"x" * 100000
        assert c.exchange(req("/bytes/0")).body == b""
        assert c.exchange(req("/bytes/67108865")).status == 400
        assert c.exchange(req("/bytes/abc")).status == 400
        t0 = time.monotonic()
        m = c.exchange(req("/delay/300"))
        assert m.status == 200 and time.monotonic() - t0 >= 0.28
        assert c.exchange(req("/status/404")).status == 404
        assert c.exchange(req("/status/503?x=1")).status == 503
        assert c.exchange(req("/status/100")).status == 400
        m = c.exchange(req("/bytes/10", method=b"HEAD"), method="HEAD")
        assert m.status == 200 and m.get("Content-Length") == b"10"
        # Nothing followed the HEAD response: the next answer starts cleanly.
        assert c.exchange(req("/status/202")).status == 202


def test_pipelined_requests_with_bodies_answered_in_order(lab_origin):
    o = lab_origin()
    with o.client() as c:
        c.send(req("/delay/100")
               + req("/status/201", method=b"POST", extra=b"Content-Length: 5\r\n", body=b"hello")
               + req("/bytes/3", method=b"POST", extra=b"Transfer-Encoding: chunked\r\n",
                     body=b"3\r\nabc\r\n0\r\n\r\n")
               + req("/status/404"))
        assert [c.response().status for _ in range(4)] == [200, 201, 200, 404]


def test_malformed_request_gets_400_and_close(lab_origin):
    o = lab_origin()
    for bad in (b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\r\n\r\n",
                b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 40000 + b"\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        with o.client() as c:
            m = c.exchange(bad)
            assert m.status == 400 and m.get("Connection") == b"close"
            assert c.wait_eof()[1] in ("FIN", "RST")
    o.wait_log(r"bad request \(BARE_LF at byte \d+\) -> 400")
    with o.client() as c:  # still serving
        assert c.exchange(req()).status == 200


def test_hostile_bytes_do_not_crash(lab_origin):
    o = lab_origin("--auth", "ntlm")
    import random

    rnd = random.Random(5)
    for i in range(30):
        with o.client() as c:
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
            if i % 2:
                junk = req(extra=b"Authorization: NTLM " + junk.hex().encode()[:300] + b"\r\n")
            try:
                c.send(junk)
                c.sock.shutdown(socket.SHUT_WR)
                c.r.read_to_eof()
            except (ConnectionResetError, BrokenPipeError):
                pass
    with o.client() as c:
        assert c.exchange(req()).status == 401


# ----------------------------------------------------------------------------- CLI


def test_usage_errors_exit_2():
    for args, text in ((["--auth", "kerberos"], b"--auth: 'kerberos'"),
                       (["--idle-timeout", "-1"], b"--idle-timeout"),
                       (["--close-after", "x"], b"--close-after"),
                       (["--listen", "nowhere"], b"--listen"),
                       (["--bogus"], b"unknown option"),
                       (["--no-server-header", "--server-header", "x"], b"contradict")):
        r = subprocess.run([SHUNT_BIN, "lab", "origin"] + args, capture_output=True, timeout=10)
        assert r.returncode == 2, args
        assert text in r.stderr, r.stderr
    r = subprocess.run([SHUNT_BIN, "lab", "origin", "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--no-server-header" in r.stdout


def test_sigint_stops_with_open_connections(lab_origin):
    o = lab_origin()
    c = o.client()
    assert c.exchange(req()).status == 200
    d = o.client()
    d.send(b"GET /delay/5000 HTTP/1.1\r\nHost: x\r\n\r\n")
    o.wait_log(r"opened", count=2)
    o.signal(2)
    assert o.wait_exit() == 0
    assert c.wait_eof()[1] in ("FIN", "RST")
    c.close()
    d.close()


def test_quiet_drops_request_lines_only(lab_origin):
    o = lab_origin("-q", "--auth", "ntlm")
    with o.client() as c:
        _, m = ntlm_handshake(c)
        assert m.status == 200
        port = c.port
    log = o.wait_conn_log(port, "closed by client (FIN)")
    assert log == ["opened", "no credentials -> 401 NTLM", "NTLM negotiate -> challenge",
                   "NTLM authenticate user LAB\\alice -> 200", "closed by client (FIN)"]
