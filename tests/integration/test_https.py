"""test_https.py - HTTPS interception (`shunt proxy --intercept`), driven with real peers:
curl, headless Chromium and Python's ssl module as clients; nginx, Apache with mod_ssl and a
scripted Python TLS origin as servers, all with certificates of a test CA (tlspeers.py);
shunt's own CA made by shunt in a temporary $XDG_DATA_HOME.

What must hold: the exchanges inside an intercepted tunnel are decrypted, recorded with
https URLs and TLS facts, and go through the rules as plain ones do; TLS failures on either
side are exchanges with the reason; a tunnel that does not start with TLS, or that the
--intercept filter leaves alone, stays a byte tunnel; pairing and close mirroring hold
through TLS (close_notify and truncation recorded); --reverse https:// reaches a TLS origin.
"""
import json
import re
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import peers
import tlspeers
from peers import WAIT, get, reply_with, response, wait_for
from tlspeers import TLSClient, fields, request

pki = tlspeers.pki
tls_nginx = tlspeers.tls_nginx
shunt_ca = tlspeers.shunt_ca
tls_origins = tlspeers.tls_origins

pytestmark = pytest.mark.deadline(40)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"

# SHUNT_TLS_* close bits (src/proxy/events.h)
NOTIFY_IN, NOTIFY_OUT, TRUNCATED, USED = 1, 2, 4, 8

UNKNOWN_CA = "TLS with the client: the client rejected shunt's certificate (alert 48: unknown ca)"
EXPIRED = "TLS with the upstream: certificate verify failed: certificate has expired"
MISMATCH = "TLS with the upstream: hostname mismatch"


# ----------------------------------------------------------------------------- helpers


def intercepting(shunt, shunt_ca, pki, tmp_path, *extra, intercept=(), name="c", **kw):
    """A proxy intercepting (every CONNECT, or those <intercept> names: a one-item tuple of
    the FILTER), trusting the test CA upstream, recording to tmp_path/NAME.db. Returns
    (proxy, capture path)."""
    cap = tmp_path / f"{name}.db"
    px = shunt("--intercept", *intercept, "--upstream-cacert", pki.ca, "--capture", cap, "-v",
               *extra, env=shunt_ca.env, **kw)
    shunt_ca.wait()
    return px, cap


def tcurl(px, shunt_ca, *args, cacert=None):
    """curl through <px> trusting shunt's CA (or <cacert>; False: no --cacert)."""
    ca = [] if cacert is False else ["--cacert", str(cacert or shunt_ca.cert)]
    return peers.curl("--noproxy", "", "-x", px.proxy_url, *ca, *args)


def cli(*args):
    p = subprocess.run([peers.SHUNT_BIN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=WAIT, stdin=subprocess.DEVNULL)
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    return p


def sessions(cap):
    p = cli("sessions", "--json", cap)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["exchanges"]


def connections(cap):
    p = cli("connections", "--json", cap)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["connections"]


def rows(cap, sql, *params):
    with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, params)]


def tls_rows(cap, side=None):
    """The capture's TLS facts (the tls table), in order; side 0: the client's TLS, 1: an
    upstream's."""
    where = "" if side is None else f" WHERE side = {int(side)}"
    return rows(cap, "SELECT * FROM tls" + where + " ORDER BY id")


def close_bits(cap, conn_id, upstream_port=None):
    """SHUNT_TLS_* bits of the client connection <conn_id> (or of its upstream whose local
    port is <upstream_port>): from connections/upstreams.tls_close, or from the tls rows'
    close_bits, whichever the capture has."""
    if upstream_port is None:
        try:
            r = rows(cap, "SELECT tls_close FROM connections WHERE id = ?", conn_id)
            if r and r[0]["tls_close"] is not None:
                return r[0]["tls_close"]
        except sqlite3.OperationalError:
            pass
        r = rows(cap, "SELECT close_bits FROM tls WHERE conn_id = ? AND side = 0", conn_id)
        return r[0]["close_bits"] if r else None
    ups = rows(cap, "SELECT * FROM upstreams WHERE conn_id = ? AND local_port = ?", conn_id, upstream_port)
    assert ups, f"no upstream of connection {conn_id} on port {upstream_port}"
    if ups[0].get("tls_close") is not None:
        return ups[0]["tls_close"]
    r = rows(cap, "SELECT close_bits FROM tls WHERE upstream_id = ? AND side = 1", ups[0]["id"])
    return r[0]["close_bits"] if r else None


def inner(exchanges):
    """The exchanges that are not the CONNECTs."""
    return [e for e in exchanges if e["method"] != "CONNECT"]


def stop(px):
    assert px.stop() == []


# ----------------------------------------------------------------------------- decrypted


def test_curl_through_interception_sees_decrypted_exchanges_in_the_capture(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """Two requests on one intercepted connection: curl trusts shunt's CA, shunt trusts the
    test CA; the capture holds the CONNECT and both GETs with https URLs, their bodies in
    clear, and the TLS facts of both sides."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    base = tls_nginx.url("good")
    r = tcurl(px, shunt_ca, f"{base}/a", f"{base}/b")
    assert r.returncode == 0, r.stderr
    got = fields(r.stdout)
    assert [g["sni"] for g in got] == ["localhost", "localhost"]
    assert got[0]["conn"] == got[1]["conn"] and [g["n"] for g in got] == ["1", "2"]  # paired
    stop(px)
    # -v: the origin-form target of an exchange inside TLS comes with its scheme
    assert re.search(r"shunt: exchange .* GET /a 200 .* scheme=https", px.stderr), px.stderr
    assert not re.search(r"CONNECT .* scheme=https", px.stderr), px.stderr

    ex = sessions(cap)
    connect = [e for e in ex if e["method"] == "CONNECT"]
    assert len(connect) == 1 and connect[0]["status"] == 200 and "U" in connect[0]["flags"], ex
    gets = inner(ex)
    assert [(e["method"], e["url"], e["status"]) for e in gets] == [
        ("GET", f"{base}/a", 200), ("GET", f"{base}/b", 200)], gets
    assert {e["conn"] for e in ex} == {connect[0]["conn"]}
    assert not any(e["error"] for e in ex), ex
    show = cli("show", cap, gets[0]["id"])
    assert show.returncode == 0 and f"GET {base}/a -> 200" in show.stdout, show.stdout
    assert "sni=localhost" in show.stdout  # the response body, decrypted
    (conn,) = connections(cap)
    assert conn["tls"] is True

    client, = tls_rows(cap, side=0)
    assert client["sni"] == "localhost" and client["error"] is None
    assert client["version"].startswith("TLSv1.") and client["alpn"] == "http/1.1"
    assert "localhost" in client["cert_san"]  # the leaf shunt made
    up, = tls_rows(cap, side=1)
    assert up["sni"] == "localhost" and up["error"] is None and up["verify_result"] == 0
    assert tlspeers.CA_NAME in up["cert_issuer"] and up["insecure"] == 0
    assert up["cert_sha256"] == pki.sha256("good")
    assert up["handshake_us"] > 0 and up["cert_not_after"] > time.time()
    assert cli("diff", cap, cap).returncode == 0
    # HAR: the new upstream's handshake in timings.ssl (inside connect), none when reused
    har = tmp_path / "c.har"
    assert cli("export", cap, "--har", har).returncode == 0
    entries = [e for e in json.loads(har.read_text())["log"]["entries"]
               if e["request"]["url"].startswith("https://")]
    assert [e["request"]["url"] for e in entries] == [f"{base}/a", f"{base}/b"]
    t = [e["timings"] for e in entries]
    assert t[0]["ssl"] > 0 and t[0]["connect"] >= t[0]["ssl"] and t[1]["ssl"] == -1, t
    # filters see the https URL
    p = cli("sessions", "--json", cap, "~u ^https://localhost: & ~m GET")
    assert p.returncode == 0 and [e["path"] for e in json.loads(p.stdout)["exchanges"]] == ["/a", "/b"]


def test_tls_record_bytes_are_not_read_as_bytes_past_a_responses_end(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """An upstream's byte count is of TCP bytes: with TLS it holds records and the handshake,
    more than the responses. Two connections one after the other (a client that drops one
    and opens another is what the check looks for): no unframed-or-overlong-body finding."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    base = tls_nginx.url("good")
    for path in ("/a", "/b"):
        r = tcurl(px, shunt_ca, f"{base}{path}")
        assert r.returncode == 0, r.stderr
    stop(px)
    d = cli("diagnose", cap)
    assert d.returncode in (0, 1) and "2 connections" in d.stdout, d.stdout
    assert "unframed-or-overlong-body" not in d.stdout, d.stdout


def test_a_header_rule_applies_inside_tls_and_sees_the_https_url(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """--modify-headers with a filter on the https URL: the request nginx reads and the
    response curl reads both carry the header; the exchange is marked changed."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--modify-headers", "|~u ^https://localhost:|X-Inside|yes")
    r = tcurl(px, shunt_ca, "-D", "-", tls_nginx.url("good") + "/rule")
    assert r.returncode == 0, r.stderr
    assert b"\r\nX-Inside: yes\r\n" in r.stdout, r.stdout
    assert fields(r.stdout.rsplit(b"\r\n\r\n", 1)[1])[0]["x-inside"] == "yes"
    stop(px)
    (e,) = inner(sessions(cap))
    assert "C" in e["flags"], e
    changes = rows(cap, "SELECT what, by FROM changes WHERE exchange_id = ?", e["id"])
    assert any("X-Inside" in c["what"] for c in changes), changes


def admin_port(px):
    import re

    rx = re.compile(r"^shunt: admin API on \S+:(\d+)$")
    line = wait_for(lambda: next((l for l in px.stdout_lines if rx.match(l)), None), what="the admin API line")
    return int(rx.match(line).group(1))


def set_option(px, name, on):
    body = json.dumps({"on": on}).encode()
    port = admin_port(px)
    with peers.Client(port) as c:
        c.send(f"PUT /api/options/{name.replace(' ', '%20')} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               f"Connection: close\r\n\r\n".encode() + body)
        assert c.response().status == 200


def test_the_story_lua_rule_over_https(shunt, shunt_ca, pki, tls_origins, tmp_path):
    """The story's rule (add a Server header, switched on through the admin API) on an open
    intercepted keep-alive connection: the next response has it, over one upstream TLS
    connection throughout."""
    origin = tls_origins(reply_with(response(headers=[b"X-A: 1"], body=b"hi")))
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--rules", EXAMPLES / "add-server-header.lua")
    with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as c:
        off = c.exchange(request(f"localhost:{origin.port}", "/1"))
        assert off.raw == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
        set_option(px, "Add Server Header", True)
        on = c.exchange(request(f"localhost:{origin.port}", "/2"))
        assert on.raw == (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n"
                          b"Server: Microsoft-IIS/6.0\r\n\r\nhi")
    assert len(origin.conns) == 1 and origin.handshakes == 1
    assert [m.start for m in origin.conns[0].requests] == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1"]
    stop(px)
    ex = inner(sessions(cap))
    assert [e["url"] for e in ex] == [f"https://localhost:{origin.port}/1", f"https://localhost:{origin.port}/2"]
    assert "C" not in ex[0]["flags"] and "C" in ex[1]["flags"]


def test_large_bodies_both_ways_through_interception(
        shunt, shunt_ca, pki, tls_nginx, tls_origins, tmp_path):
    """8 MiB down from nginx and 3 MiB up to a TLS origin, through interception: every
    byte arrives (many TLS records, input buffers filled and drained, backpressure)."""
    import hashlib
    import os

    name = f"big-{uuid.uuid4().hex}.bin"
    data = os.urandom(1 << 20) * 8
    (tls_nginx.dir / "www" / name).write_bytes(data)

    def digest_upload(conn):
        while True:
            h = hashlib.sha256()
            req = conn.recv_request(sink=h.update)
            if req is None:
                return
            conn.send(response(body=h.hexdigest().encode()))

    origin = tls_origins(digest_upload)
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    out = tmp_path / "down.bin"
    r = tcurl(px, shunt_ca, "-o", out, f"{tls_nginx.url('good')}/www/{name}")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    up = tmp_path / "up.bin"
    up.write_bytes(data[: 3 << 20])
    r = tcurl(px, shunt_ca, "--data-binary", f"@{up}", f"https://localhost:{origin.port}/up")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == hashlib.sha256(data[: 3 << 20]).hexdigest()
    stop(px)
    ex = inner(sessions(cap))
    assert [e["status"] for e in ex] == [200, 200] and not any(e["error"] for e in ex), ex
    (tls_nginx.dir / "www" / name).unlink()


# ----------------------------------------------------------------------------- failures


def test_a_client_that_does_not_trust_shunts_ca_is_recorded_and_diagnosed(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """curl without shunt's CA refuses the leaf (alert 48, unknown ca): an exchange with
    method '-', the https URL of the CONNECT, no status, and the reason; `shunt diagnose`
    names it and says how to trust the CA."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    base = tls_nginx.url("good")
    r = tcurl(px, shunt_ca, base + "/", cacert=pki.ca)  # trusts the origin's CA, not shunt's
    assert r.returncode == 60, r.stderr  # "SSL certificate problem"
    stop(px)
    ex = sessions(cap)
    failed = [e for e in ex if e["method"] in ("-", None)]
    assert len(failed) == 1, ex
    f = failed[0]
    assert f["url"] == base + "/" and f["status"] is None and "E" in f["flags"], f
    assert f["error"] == UNKNOWN_CA, f
    client, = tls_rows(cap, side=0)
    assert client["error"] == UNKNOWN_CA[len("TLS with the client: "):]
    assert tls_rows(cap, side=1) == []  # no request: no upstream TLS
    d = cli("diagnose", cap)
    assert "tls-client-rejects-cert" in d.stdout and "does not trust" in d.stdout, d.stdout
    assert "shunt ca" in d.stdout, d.stdout


@pytest.mark.parametrize("leaf,reason", [("expired", EXPIRED), ("wrong", MISMATCH)])
def test_an_upstream_certificate_that_fails_verification_is_a_502_with_the_reason(
        shunt, shunt_ca, pki, tls_nginx, tmp_path, leaf, reason):
    """An origin whose certificate is expired, or names another host: the client's request
    gets shunt's 502 and the exchange names the check that failed; with
    --insecure-upstream the same request goes through (and the capture says it was
    insecure)."""
    url = tls_nginx.url(leaf) + "/x"
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    r = tcurl(px, shunt_ca, "-w", "%{http_code}", "-o", "/dev/null", url)
    assert r.returncode == 0 and r.stdout == b"502", (r.stdout, r.stderr)
    stop(px)
    (e,) = inner(sessions(cap))
    assert (e["method"], e["url"], e["status"]) == ("GET", url, 502), e
    assert e["error"].startswith(reason) and "E" in e["flags"] and "S" in e["flags"], e
    up, = tls_rows(cap, side=1)
    assert up["error"].startswith(reason[len("TLS with the upstream: "):]) and up["verify_result"] != 0
    d = cli("diagnose", cap)
    assert "tls-upstream-cert-invalid" in d.stdout, d.stdout

    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--insecure-upstream", name="insecure")
    assert "insecure" in px.stderr.lower()  # said at start, loudly
    r = tcurl(px, shunt_ca, url)
    assert r.returncode == 0, r.stderr
    assert fields(r.stdout)[0]["port"] == str(tls_nginx.port[leaf])
    stop(px)
    (e,) = inner(sessions(cap))
    assert e["status"] == 200 and not e["error"], e
    up, = tls_rows(cap, side=1)
    assert up["insecure"] == 1 and up["error"] is None


def test_a_client_handshake_that_stalls_times_out_as_an_exchange(shunt, shunt_ca, pki, tmp_path):
    """A client that sends half a ClientHello into an intercepted tunnel and stops: after
    the TLS handshake timeout the exchange names it, and the client is closed."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--tls-handshake-timeout", "1")
    port = peers.free_port()  # never reached: the handshake with the client comes first
    with px.client() as c:
        c.send(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        c.send(b"\x16\x03\x01\x02\x00\x01")  # a record header and the start of a ClientHello
        t0 = time.monotonic()
        c.wait_eof()
        assert 0.8 < time.monotonic() - t0 < 5
    stop(px)
    failed = [e for e in sessions(cap) if e["method"] in ("-", None)]
    assert len(failed) == 1 and failed[0]["error"] == "TLS with the client: handshake timed out after 1 s", failed


def test_an_upstream_handshake_that_stalls_times_out_with_a_504(
        shunt, shunt_ca, pki, origin, tmp_path):
    """An origin that accepts the connection and never answers the ClientHello: after the
    TLS handshake timeout the client's request gets shunt's 504 naming it."""
    origin.handler = lambda conn: conn.r.read_to_eof()  # reads, never answers
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--tls-handshake-timeout", "1")
    t0 = time.monotonic()
    r = tcurl(px, shunt_ca, "-w", "%{http_code}", "-o", "/dev/null", f"https://localhost:{origin.port}/")
    assert r.stdout == b"504" and 0.8 < time.monotonic() - t0 < 5, (r.stdout, r.stderr)
    stop(px)
    (e,) = inner(sessions(cap))
    assert e["error"] == "TLS with the upstream: handshake timed out after 1 s", e
    up, = tls_rows(cap, side=1)
    assert up["error"] == "handshake timed out after 1 s"


def test_a_connect_inside_an_intercepted_tunnel_is_a_byte_tunnel_in_it(
        shunt, shunt_ca, pki, origin, tls_origins, tmp_path):
    """A CONNECT sent inside intercepted TLS is not intercepted again: shunt answers 200
    inside the TLS and passes the bytes to the named target as they are."""
    origin.handler = peers.echo_handler
    outer = tls_origins()
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", outer.port, shunt_ca.cert) as c:
        c.send(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        payload = b"\x16\x03\x01 not really a hello"
        c.send(payload)
        assert c.r.read_exact(len(payload)) == payload
    stop(px)
    assert [e["method"] for e in sessions(cap)] == ["CONNECT", "CONNECT"]


def test_a_connect_inside_tls_to_the_same_origin_does_not_reuse_its_tls_upstream(
        shunt, shunt_ca, pki, tls_origins, tmp_path):
    """GET /first opens shunt's TLS connection to the origin; a CONNECT inside the same
    intercepted connection to that same host:port must get a new byte tunnel (the client's
    own TLS reaches the origin), not ride on shunt's TLS upstream as plaintext."""
    import ssl

    o = tls_origins()
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", o.port, shunt_ca.cert) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert c.response().status == 200
        target = f"localhost:{o.port}".encode()
        c.send(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        assert c.response(method="CONNECT").status == 200
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tlspeers.client_context(pki.ca).wrap_bio(inc, out, server_hostname="localhost")
        pending = bytes(c.r.buf)
        c.r.buf.clear()
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                c.send(out.read())
                d = pending or c.tls.recv(65536)
                pending = b""
                assert d, "the tunnel ended during the inner handshake"
                inc.write(d)
        c.send(out.read())
        assert wait_for(lambda: o.handshakes == 2)  # the inner handshake reached the origin
    stop(px)


def test_a_client_that_leaves_during_the_handshake_is_a_failed_exchange(
        shunt, shunt_ca, pki, tmp_path):
    """A client that reads shunt's certificate and closes without a word (what a client that
    pins its server's key often does): an exchange saying so, and the diagnose check."""
    import ssl

    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    port = peers.free_port()  # never reached: no request comes
    with px.client() as c:
        c.send(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        c.send(out.read())  # the ClientHello
        assert c.sock.recv(65536)[:1] == b"\x16"  # shunt's flight: then the client leaves
    stop(px)
    failed = [e for e in sessions(cap) if e["method"] in ("-", None)]
    assert [f["error"] for f in failed] == [
        "TLS with the client: the client closed the connection during the handshake"], failed
    (fact,) = tls_rows(cap, side=0)
    assert fact["error"] == "the client closed the connection during the handshake"
    assert "tls-client-rejects-cert" in cli("diagnose", cap).stdout


def test_an_upstream_that_leaves_during_the_handshake_is_a_502(
        shunt, shunt_ca, pki, origin, tmp_path):
    origin.handler = lambda conn: (conn.r.read_some(), conn.close())  # reads the hello, leaves
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    r = tcurl(px, shunt_ca, "-w", "%{http_code}", "-o", "/dev/null", f"https://localhost:{origin.port}/")
    assert r.stdout == b"502", (r.stdout, r.stderr)
    stop(px)
    (e,) = inner(sessions(cap))
    assert e["error"] == "TLS with the upstream: the server closed the connection during the handshake", e


# ----------------------------------------------------------------------------- names, filters


def test_sni_with_several_names_and_an_ip_address(shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """Three tunnels to one origin by three names: two DNS names (resolved by shunt's own
    /etc/hosts) and the IP address (no SNI). Each time curl accepts the leaf shunt made for
    that name (SAN DNS or IP), and the origin is asked for the same name."""
    wrap = tlspeers.hosts_wrap(tmp_path)
    if wrap is None:
        pytest.skip("cannot give shunt an /etc/hosts of its own (unshare -m)")
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, wrap=wrap)
    p = tls_nginx.port["good"]
    for host, sni in (("a.shunt.test", "a.shunt.test"), ("b.shunt.test", "b.shunt.test"), ("127.0.0.1", "")):
        r = tcurl(px, shunt_ca, f"https://{host}:{p}/")
        assert r.returncode == 0, (host, r.stderr)
        assert fields(r.stdout)[0]["sni"] == sni, (host, r.stdout)
    stop(px)
    assert [e["url"] for e in inner(sessions(cap))] == [
        f"https://a.shunt.test:{p}/", f"https://b.shunt.test:{p}/", f"https://127.0.0.1:{p}/"]
    client = tls_rows(cap, side=0)
    assert [c["sni"] or "" for c in client] == ["a.shunt.test", "b.shunt.test", ""]
    assert "DNS:a.shunt.test" in client[0]["cert_san"] and "IP:127.0.0.1" in client[2]["cert_san"]
    assert [u["sni"] or "" for u in tls_rows(cap, side=1)] == ["a.shunt.test", "b.shunt.test", ""]


def test_intercept_filter_intercepts_one_host_and_tunnels_another(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """--intercept with a filter naming localhost: the tunnel to localhost is terminated
    (curl must trust shunt's CA; the GET is recorded), the one to 127.0.0.1 stays a byte
    tunnel (curl sees nginx's own certificate; only the CONNECT is recorded)."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, intercept=("localhost",))
    p = tls_nginx.port["good"]
    r = tcurl(px, shunt_ca, "-v", f"https://localhost:{p}/i")
    assert r.returncode == 0, r.stderr
    assert b"shunt CA" in r.stderr  # the issuer curl saw
    r = tcurl(px, shunt_ca, "-v", f"https://127.0.0.1:{p}/t", cacert=pki.ca)
    assert r.returncode == 0, r.stderr
    assert tlspeers.CA_NAME.encode() in r.stderr and b"shunt CA (" not in r.stderr
    stop(px)
    ex = sessions(cap)
    assert [(e["method"], e["url"]) for e in ex] == [
        ("CONNECT", f"localhost:{p}"), ("GET", f"https://localhost:{p}/i"), ("CONNECT", f"127.0.0.1:{p}")], ex
    conns = connections(cap)
    assert [c["tls"] for c in conns] == [True, False] and conns[1]["tunnel"] is True


def test_reverse_https_reaches_a_tls_origin(shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """--reverse https://localhost:PORT: plain HTTP from the client, TLS to nginx (verified
    against the test CA, SNI localhost), recorded as https with the upstream's facts."""
    cap = tmp_path / "r.db"
    px = shunt("--reverse", tls_nginx.url("good"), "--upstream-cacert", pki.ca, "--capture", cap,
               env=shunt_ca.env)
    r = peers.curl(f"http://127.0.0.1:{px.port}/r1", f"http://127.0.0.1:{px.port}/r2")
    assert r.returncode == 0, r.stderr
    got = fields(r.stdout)
    assert [g["sni"] for g in got] == ["localhost"] * 2 and got[0]["conn"] == got[1]["conn"]
    stop(px)
    ex = sessions(cap)
    assert [e["url"].split("://")[0] for e in ex] == ["https", "https"], ex
    assert [e["path"] for e in ex] == ["/r1", "/r2"]
    assert tls_rows(cap, side=0) == []
    up, = tls_rows(cap, side=1)
    assert up["sni"] == "localhost" and up["cert_sha256"] == pki.sha256("good")


def test_reverse_https_to_an_expired_certificate_is_a_502(shunt, shunt_ca, pki, tls_nginx, tmp_path):
    cap = tmp_path / "r.db"
    px = shunt("--reverse", tls_nginx.url("expired"), "--upstream-cacert", pki.ca, "--capture", cap,
               env=shunt_ca.env)
    r = peers.curl("-w", "%{http_code}", "-o", "/dev/null", f"http://127.0.0.1:{px.port}/")
    assert r.stdout == b"502", r
    stop(px)
    (e,) = sessions(cap)
    assert e["error"].startswith(EXPIRED), e


def test_a_tunnel_whose_first_bytes_are_not_tls_stays_a_tunnel(
        shunt, shunt_ca, pki, origin, tmp_path):
    """Plain HTTP sent into an intercepted CONNECT: the bytes reach the origin unchanged and
    its answer comes back (a byte tunnel), recorded as a tunnel with no error, and the fact
    that the client did not speak TLS noted."""
    origin.handler = peers.echo_handler
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    payload = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with px.client() as c:
        c.send(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        c.send(payload)
        assert c.r.read_exact(len(payload)) == payload
        c.shutdown_write()
        rest, how = c.wait_eof()
        assert rest == b"bye" and how == "FIN"
    stop(px)
    (e,) = sessions(cap)
    assert e["method"] == "CONNECT" and "U" in e["flags"] and not e["error"], e
    (conn,) = connections(cap)
    assert conn["tunnel"] is True and conn["tls"] is False
    (fact,) = tls_rows(cap, side=0)
    assert fact["error"] == "not TLS: the client sent plain HTTP into the tunnel"


def test_a_server_first_protocol_gets_its_banner_through_an_intercepted_tunnel(
        shunt, shunt_ca, pki, origin, tmp_path):
    """SMTP, IMAP, FTP, MySQL: the server speaks first. The client sends nothing after the
    CONNECT's 200, so after a short wait the tunnel becomes a byte tunnel and the banner
    comes through: not a TLS handshake that times out."""
    def banner(conn):
        conn.send(b"220 hello\r\n")
        peers.echo_handler(conn)

    origin.handler = banner
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--tls-handshake-timeout", "20")
    with px.client() as c:
        c.send(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        t0 = time.monotonic()
        assert c.r.read_exact(11) == b"220 hello\r\n"
        assert time.monotonic() - t0 < 5
        c.send(b"EHLO x\r\n")
        assert c.r.read_exact(8) == b"EHLO x\r\n"
    stop(px)
    (e,) = sessions(cap)
    assert e["method"] == "CONNECT" and not e["error"], e
    (conn,) = connections(cap)
    assert conn["tunnel"] is True and conn["tls"] is False


def test_a_tunnel_whose_first_bytes_are_smtp_is_not_called_plain_http(
        shunt, shunt_ca, pki, origin, tmp_path):
    origin.handler = peers.echo_handler
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with px.client() as c:
        c.send(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        c.send(b"EHLO x\r\n")
        assert c.r.read_exact(8) == b"EHLO x\r\n"
    stop(px)
    (fact,) = tls_rows(cap, side=0)
    assert fact["error"] == "not TLS: the client's first bytes are not a TLS handshake"


def test_a_plain_tunnel_whose_upstream_fails_is_reset_not_answered_in_http(
        shunt, shunt_ca, pki, tmp_path):
    """Not TLS into an intercepted CONNECT whose target refuses: the client had its 200 and
    speaks its own protocol, so no HTTP 502 goes into its bytes; it is reset, and the
    capture has the failure as an exchange."""
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    port = peers.free_port()
    with px.client() as c:
        c.send(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert c.response(method="CONNECT").status == 200
        c.send(b"\x00\x01binary")
        rest, how = c.wait_eof()
        assert b"HTTP/1.1" not in rest, rest
        assert how == "RST"
    stop(px)
    failed = [e for e in sessions(cap) if e["method"] != "CONNECT"]
    assert len(failed) == 1 and "cannot connect to localhost" in failed[0]["error"], failed
    assert "E" in failed[0]["flags"], failed


def test_a_client_sni_that_is_not_a_host_name_is_not_sent_upstream(
        shunt, shunt_ca, pki, tls_origins, tmp_path):
    """The SNI a client sends is untrusted: one that is not a host name (here with a space
    and a '!'; the engine records odd bytes escaped) never goes to the origin: the CONNECT
    host does."""
    import ssl

    o = tls_origins()
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with px.client() as c:
        target = f"localhost:{o.port}".encode()
        c.send(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        assert c.response(method="CONNECT").status == 200
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ss = ctx.wrap_socket(c.sock, server_hostname=b"bad name!")
        ss.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            d = ss.recv(65536)
            assert d, got
            got += d
        assert got.startswith(b"HTTP/1.1 200"), got
    stop(px)
    assert o.sni == ["localhost"], o.sni


# ----------------------------------------------------------------------------- closes, pairing


def _close_delimited(how):
    """An origin handler: one response framed by the close, then close_notify + FIN, or a
    bare TCP close (truncation)."""

    def handler(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        if how == "close_notify":
            conn.sock.close_notify()
            conn.r.read_to_eof()
        conn.close()

    return handler


@pytest.mark.parametrize("how", ["close_notify", "truncated"])
def test_the_upstreams_close_notify_or_truncation_is_mirrored_and_recorded(
        shunt, shunt_ca, pki, tls_origins, tmp_path, how):
    """The origin ends a close-delimited response with close_notify, or with a bare TCP
    close: the client sees the same (close_notify, or a TLS truncation), and the capture's
    close bits of the upstream say which."""
    origin = tls_origins(_close_delimited(how))
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as c:
        c.send(request("localhost", "/"))
        m = c.response()
        assert m.body == b"until the end"
        assert c.tls.tls_end == how
        upstream_port = origin.conns[0].peer_port
    stop(px)
    (conn,) = connections(cap)
    bits = close_bits(cap, conn["id"], upstream_port)
    assert bits & USED and bool(bits & NOTIFY_IN) == (how == "close_notify"), bits
    assert bool(bits & TRUNCATED) == (how == "truncated"), bits
    cbits = close_bits(cap, conn["id"])
    assert cbits & USED and bool(cbits & NOTIFY_OUT) == (how == "close_notify"), cbits


@pytest.mark.parametrize("how", ["close_notify", "truncated"])
def test_the_clients_close_notify_or_truncation_is_mirrored_and_recorded(
        shunt, shunt_ca, pki, tls_origins, tmp_path, how):
    """The client ends its keep-alive connection with close_notify or a bare TCP close: the
    origin sees the same, and the capture's close bits of the client connection say which."""
    origin = tls_origins()
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as c:
        assert c.exchange(request("localhost", "/")).body == b"ok"
        if how == "close_notify":
            c.close_notify()
            c.wait_eof()
        else:
            c.tls.close()
    (oc,) = origin.wait_conns(1)
    oc.wait_end()
    wait_for(lambda: oc.sock.tls_end is not None, what="the origin's view of the end")
    assert oc.sock.tls_end == how
    stop(px)
    (conn,) = connections(cap)
    bits = close_bits(cap, conn["id"])
    assert bits & USED and bool(bits & NOTIFY_IN) == (how == "close_notify"), bits
    assert bool(bits & TRUNCATED) == (how == "truncated"), bits


def test_pairing_holds_through_tls(shunt, shunt_ca, pki, tls_origins, tmp_path):
    """Two requests on one client TLS connection use one upstream TLS connection; a new
    client connection gets a new upstream connection, never the first one."""
    origin = tls_origins()
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as c:
        assert c.exchange(request("localhost", "/1")).body == b"ok"
        assert c.exchange(request("localhost", "/2")).body == b"ok"
        with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as d:
            assert d.exchange(request("localhost", "/3")).body == b"ok"
        assert c.exchange(request("localhost", "/4")).body == b"ok"
    conns = origin.wait_conns(2)
    assert len(origin.conns) == 2 and origin.handshakes == 2
    assert [[m.start.split(b" ")[1] for m in oc.requests] for oc in conns] == [[b"/1", b"/2", b"/4"], [b"/3"]]
    assert origin.sni == ["localhost", "localhost"]
    stop(px)
    ex = inner(sessions(cap))
    by_conn = {}
    for e in ex:
        by_conn.setdefault(e["conn"], []).append(e["path"])
    assert sorted(by_conn.values()) == [["/1", "/2", "/4"], ["/3"]]


def test_an_upgrade_inside_tls_is_a_tunnel_encrypted_on_both_sides(
        shunt, shunt_ca, pki, tls_origins, tmp_path):
    """101 Switching Protocols inside an intercepted tunnel: the bytes after it pass both
    ways, decrypted and encrypted again, and the origin's half-close is mirrored."""
    def upgrade_then_echo(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
        got = conn.r.read_exact(5)
        conn.send(got.upper())
        conn.sock.close_notify()
        conn.r.read_to_eof()

    origin = tls_origins(upgrade_then_echo)
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
    with TLSClient(px.port, "localhost", origin.port, shunt_ca.cert) as c:
        r = c.exchange(request(f"localhost:{origin.port}", "/ws", b"Upgrade: x\r\nConnection: Upgrade\r\n"))
        assert r.status == 101
        c.send(b"hello")
        assert c.r.read_exact(5) == b"HELLO"
        rest, how = c.wait_eof()
        assert rest == b"" and how == "close_notify"
        c.close_notify()
    stop(px)
    (e,) = inner(sessions(cap))
    assert e["status"] == 101 and "U" in e["flags"], e


@pytest.mark.deadline(60)
def test_kill_9_during_tls_traffic_leaves_a_readable_capture(shunt_ca, pki, tls_nginx, tmp_path):
    """Clients run exchanges over intercepted connections as fast as they can; after kill -9
    the capture opens, passes integrity_check, and holds the https exchanges finished more
    than 100 ms before the kill. (Not the shunt fixture: it fails a proxy killed by a
    signal.)"""
    cap = tmp_path / "k.db"
    px = peers.Shunt(["--intercept", "--upstream-cacert", str(pki.ca), "--capture", str(cap)],
                     env=shunt_ca.env)
    shunt_ca.wait()
    done, lock, stop_flag = [], threading.Lock(), threading.Event()
    port = tls_nginx.port["good"]

    def client(k):
        try:
            with TLSClient(px.port, "localhost", port, shunt_ca.cert) as c:
                i = 0
                while not stop_flag.is_set():
                    path = f"/{k}/{i}"
                    m = c.exchange(request(f"localhost:{port}", path))
                    assert m is not None and m.status == 200
                    with lock:
                        done.append((time.monotonic(), path))
                    i += 1
                    time.sleep(0.002)
        except (OSError, EOFError, AssertionError):
            pass  # killed under us

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: len(done) > 50, timeout=20, what="50 exchanges")
    time.sleep(0.3)
    killed_at = time.monotonic()
    px.signal(signal.SIGKILL)
    px.wait_exit()
    stop_flag.set()
    for t in threads:
        t.join()
    with sqlite3.connect(cap) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ex = sessions(cap)
    recorded = {e["path"] for e in ex if e["url"].startswith("https://localhost:")}
    must = {p for t, p in done if t < killed_at - 0.100}
    assert len(must) > 20
    assert not must - recorded, f"{len(must - recorded)} finished exchanges missing"


# ----------------------------------------------------------------------------- browsers, realms


@pytest.mark.deadline(120)
def test_headless_chromium_through_interception_with_shunts_ca_in_its_nss_database(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """Chromium, with shunt's CA in the NSS database of a temporary HOME, loads an https
    page with a script through the intercepting proxy: the page runs, and the capture holds
    its requests decrypted."""
    chromium = peers.need("chromium")
    certutil = peers.need("certutil")
    page = f"page-{uuid.uuid4().hex}"
    d = tls_nginx.dir / "www" / page
    d.mkdir()
    (d / "a.js").write_text("document.title = 'loaded over https';\n")
    (d / "index.html").write_text('<html><body><p>intercepted</p><script src="a.js"></script></body></html>')
    refused = tmp_path / "refused.txt"
    refused.write_text("not on this test's network\n")
    px, cap = intercepting(shunt, shunt_ca, pki, tmp_path, "--respond", f"|!~d ^localhost$|403|{refused}")
    home = tmp_path / "home"
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True)
    for args in (["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", "shunt CA", "-i", str(shunt_ca.cert)]):
        p = subprocess.run([certutil, "-d", f"sql:{nss}"] + args, capture_output=True, text=True, timeout=WAIT)
        assert p.returncode == 0, p.stderr
    url = f"{tls_nginx.url('good')}/www/{page}/index.html"
    env = {k: v for k, v in __import__("os").environ.items() if not k.lower().endswith("_proxy")}
    env["HOME"] = str(home)
    p = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium'}", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps",
         f"--proxy-server=http://127.0.0.1:{px.port}", "--proxy-bypass-list=<-loopback>",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "<title>loaded over https</title>" in p.stdout and "intercepted" in p.stdout, p.stdout[:500]
    stop(px)
    urls = {e["url"]: e["status"] for e in inner(sessions(cap))}
    assert urls.get(url) == 200 and urls.get(url.replace("index.html", "a.js")) == 200, urls
    ok = [c for c in tls_rows(cap, side=0) if c["sni"] == "localhost" and c["error"] is None]
    assert ok and all(c["alpn"] == "http/1.1" for c in ok)


import realm as krb  # noqa: E402  (the realm's fixture, after the helpers it needs)

realm = krb.realm
BOUND = "/bound/index.txt"
EVERY = "/every/index.txt"
ALICE = "alice@SHUNT.TEST"


@pytest.mark.deadline(60)
def test_kerberos_over_https_through_interception_keeps_pairing(realm, shunt, shunt_ca, pki, tmp_path):
    """The real realm's Apache, with mod_ssl: Negotiate through an intercepted tunnel. The
    handshake succeeds once and the connection-bound location then serves alice without a
    token (one client connection, one upstream connection); a second client without
    credentials gets 401 on an upstream connection of its own."""
    base, access_log, proc = tlspeers.https_apache(realm, pki)
    try:
        px, cap = intercepting(shunt, shunt_ca, pki, tmp_path)
        extra = ["--cacert", str(shunt_ca.cert)]
        t = realm.curl(base, BOUND, BOUND, BOUND, EVERY, EVERY, proxy=px.proxy_url, extra=extra)
        assert [(x.status, x.user) for x in t] == [(200, ALICE)] * 5, t
        anon = realm.curl(base, BOUND, proxy=px.proxy_url, negotiate=False, extra=extra)
        assert [(x.status, x.user) for x in anon] == [(401, "")], anon
        wait_for(lambda: len(access_log()) >= 9, what="9 requests in Apache's access log")
        log = access_log()
        ports = {}
        for l in log:
            ports.setdefault(l.port, []).append(l)
        assert len(ports) == 2, f"two client connections, two upstream connections: {log}"
        first = [(l.path, l.status, l.auth) for l in log[:8]]
        assert [x for x in first if x[0] == BOUND] == [(BOUND, 401, False), (BOUND, 200, True),
                                                       (BOUND, 200, False), (BOUND, 200, False)], log
        assert not log[8].user and log[8].status == 401
        stop(px)
        ex = inner(sessions(cap))
        assert all(e["url"].startswith(base) for e in ex) and len(ex) == 9
    finally:
        proc.terminate()
        proc.wait(WAIT)
        if proc in realm.procs:
            realm.procs.remove(proc)
