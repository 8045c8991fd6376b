"""`shunt diagnose`'s checks that read what the heads and byte counts say about the peers:
unframed-or-overlong-body, via-breaks-auth-persistence and client-quirk (docs/diagnose.md,
docs/knowledge.md). Captures recorded with real peers through `shunt proxy --capture` (the
scripted origin, curl, the lab origin and client) and hand-written HARs; each check has
cases that must trigger it and cases that must not, and the findings are asserted exactly:
which, how many, in which unit, with which examples."""
import base64
import json
import socket
import subprocess

import pytest

import peers
from test_diagnose import diagnose, findings, har_entry, record, write_har  # noqa: F401

U = "http://intranet.example/"


def capture(shunt, tmp_path, clients, name="cap.db", proxy_args=()):
    """Records a capture: a proxy with --capture, each of <clients> (argument lists for curl,
    the proxy's URL added) run in turn; the proxy is stopped before the path is returned."""
    path = tmp_path / name
    px = shunt("--capture", path, *proxy_args)
    for args in clients:
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-x", px.proxy_url] +
                           [str(a) for a in args], capture_output=True, timeout=peers.WAIT,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
    assert px.stop() == []
    return path


def by_id(doc, check):
    """The findings of <check> in <doc>, in rank order."""
    return [f for f in doc["findings"] if f["id"] == check]


def close_after(reply):
    """A handler: answers one request with <reply>, then closes the connection."""
    def handler(conn):
        if conn.recv_request() is not None:
            conn.send(reply)
        conn.close()
    return handler


# ----------------------------------------------------------------------------- unframed


def test_bodies_without_length_are_unframed_and_cost_their_connections(shunt, origin, tmp_path):
    origin.handler = close_after(b"HTTP/1.1 200 OK\r\nServer: test\r\n\r\nunframed body")
    urls = [f"{origin.url}/{i}" for i in range(3)]
    path = capture(shunt, tmp_path, [urls])
    ids, doc = findings(path)
    # Issue 11: the cause first. A body without a length forces the server's close, so the
    # closes are unframed-or-overlong-body's consequence, ranked right after it and saying so
    assert ids == ["unframed-or-overlong-body", "server-closes-keepalive"]
    u, s = doc["findings"]
    assert (u["explained_by"], s["explained_by"]) == (None, "unframed-or-overlong-body")
    # the defect: every response; the cost of the two closes a new connection followed is
    # server-closes-keepalive's, not counted twice
    assert (u["count"], u["unit"], u["confidence"]) == (3, "exchanges", "certain")
    assert u["examples"] == {"connections": [1, 2, 3], "exchanges": [1, 2, 3]}
    assert u["impact"] == {"ms": 0.0, "handshakes": 0, "connections": 0}
    assert u["what"].startswith("3 responses had a body but neither Content-Length nor "
                                "chunked framing")
    assert "2 ended a connection the client then had to open again" in u["what"]
    assert (s["count"], s["unit"]) == (2, "connections")
    assert "2 with a body delimited by the close" in s["what"]
    out = diagnose(path)[1]
    assert "\n2. server-closes-keepalive  (certain)" in out, out
    assert "   (a consequence of finding 1, unframed-or-overlong-body)" in out, out


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\n\r\n",
])
def test_framed_or_bodiless_responses_are_not_unframed(shunt, origin, tmp_path, reply):
    origin.handler = peers.reply_with(reply)
    path = capture(shunt, tmp_path, [[f"{origin.url}/a", f"{origin.url}/b"]])
    assert findings(path)[0] == []


def test_http10_or_asked_close_is_not_unframed(shunt, origin, tmp_path):
    # an HTTP/1.0 response ends its connection by its version (server-closes-keepalive's
    # business); a client that asked for the close loses nothing to the missing length
    origin.handler = close_after(b"HTTP/1.0 200 OK\r\n\r\nold")
    path = capture(shunt, tmp_path, [[f"{origin.url}/a", f"{origin.url}/b"]], name="10.db")
    ids, doc = findings(path)
    assert ids == ["server-closes-keepalive"]
    assert "as HTTP/1.0 without keep-alive" in doc["findings"][0]["what"]
    origin.handler = close_after(b"HTTP/1.1 200 OK\r\n\r\nbye")
    path = capture(shunt, tmp_path, [["-H", "Connection: close", f"{origin.url}/a"]])
    assert findings(path)[0] == []


def test_har_without_length_is_unframed(tmp_path):
    har = write_har(tmp_path / "unframed.har", [
        har_entry(0, U + "a", [("Host", "intranet.example")], 200, [("Server", "nginx")]),
        har_entry(1, U + "b", [("Host", "intranet.example")], 200,
                  [("Server", "nginx"), ("Content-Length", "2")], conn="2"),
    ])
    ids, doc = findings(har)
    # the second connection followed the first: its cost is server-closes-keepalive's, a
    # consequence of the body without a length, which ranks first
    assert ids == ["unframed-or-overlong-body", "server-closes-keepalive"]
    assert doc["findings"][1]["explained_by"] == "unframed-or-overlong-body"
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["examples"]["exchanges"]) == (1, "exchanges", [1])
    assert "1 ended a connection the client then had to open again" in f["what"]


# ----------------------------------------------------------------------------- overlong


def test_bytes_after_content_length_are_overlong(shunt, origin, tmp_path):
    origin.handler = peers.reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    path = capture(shunt, tmp_path, [[f"{origin.url}/a", f"{origin.url}/b"]])
    ids, doc = findings(path)
    assert ids == ["unframed-or-overlong-body"]
    f = doc["findings"][0]
    # curl saw the excess, dropped the connection and made a second for /b
    assert (f["count"], f["unit"], f["confidence"]) == (2, "connections", "certain")
    assert f["examples"] == {"connections": [1, 2], "exchanges": []}
    # "EXTRA" after each of the two responses
    assert "the server sent 10 bytes after the declared end of its responses" in f["what"]
    # shunt passed them on, as the server sent them; the first connection's end cost a new
    # one, which this finding counts (not client-closes-early)
    assert "shunt passed them on" in f["what"]
    assert "the client dropped 1 of those connections" in f["what"]
    assert f["impact"]["connections"] == 1


def test_chunked_response_surplus_is_unknown_not_overlong(shunt, origin, tmp_path):
    # the capture keeps decoded chunk sizes only: an upstream with chunked responses cannot
    # be measured, and the check says nothing rather than something wrong
    origin.handler = peers.reply_with(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    path = capture(shunt, tmp_path, [[f"{origin.url}/a", f"{origin.url}/b"]])
    assert findings(path)[0] == []


def test_har_body_longer_than_content_length_is_overlong(tmp_path):
    long_body = har_entry(0, U + "a", [("Host", "intranet.example")], 200,
                          [("Server", "nginx"), ("Content-Length", "2")])
    long_body["response"]["content"].update(size=7, text="okEXTRA")
    long_body["response"]["bodySize"] = 7
    gzipped = har_entry(1, U + "b", [("Host", "intranet.example")], 200,
                        [("Server", "nginx"), ("Content-Length", "2"),
                         ("Content-Encoding", "gzip")])
    gzipped["response"]["content"]["size"] = 70  # decoded: larger than the wire, and fine
    ids, doc = findings(write_har(tmp_path / "long.har", [long_body, gzipped]))
    assert ids == ["unframed-or-overlong-body"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["examples"]["exchanges"]) == (1, "exchanges", [1])
    assert f["what"].startswith("1 response carried 5 body bytes beyond its Content-Length")
    assert findings(write_har(tmp_path / "gz.har", [gzipped]))[0] == []


# ----------------------------------------------------------------------------- via


def lab_capture(shunt, lab_origin, tmp_path, origin_args, client_args, proxy_args=(),
                name="lab.db"):
    """A lab origin, a proxy recording to a new capture (with <proxy_args>), the lab client
    through it; returns the capture (the proxy stopped) and the client's summary."""
    o = lab_origin("-q", *origin_args)
    path = tmp_path / name
    px = shunt("--capture", path, *proxy_args)
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--json", "--proxy",
                        f"127.0.0.1:{px.port}"] + [str(a) for a in client_args] +
                       [f"http://127.0.0.1:{o.port}/"],
                       capture_output=True, text=True, timeout=peers.WAIT,
                       stdin=subprocess.DEVNULL)
    summary = json.loads(p.stdout)
    assert px.stop() == []
    return path, summary


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_via_to_reauthenticating_iis_is_via_breaks_auth_persistence(shunt, lab_origin,
                                                                    tmp_path, auth):
    path, s = lab_capture(shunt, lab_origin, tmp_path, ["--auth", auth, "--reauth-with-via"],
                          ["--requests", 4], ["--via"])
    # one connection, and a handshake for every request on it
    assert (s["ok"], s["connections_opened"], s["handshakes"]) == (4, 1, 4)
    ids, doc = findings(path)
    assert ids == ["via-breaks-auth-persistence", "reauth-storm"]
    v, r = doc["findings"]
    assert (v["count"], v["unit"], v["confidence"]) == (3, "handshakes", "likely")
    assert v["impact"]["handshakes"] == 3 and v["impact"]["connections"] == 0
    step = 3 if auth == "ntlm" else 2  # exchanges per handshake: NTLM has two 401s
    assert v["examples"] == {"connections": [1],
                             "exchanges": [1 + step, 1 + 2 * step, 1 + 3 * step]}
    assert v["what"].startswith("The server (Microsoft-IIS/6.0) asked for a new NTLM or "
                                "Negotiate handshake 3 times on connections already "
                                "authenticated")
    assert "Via (1.1 shunt), which the recording proxy added (shunt proxy --via)" in v["what"]
    assert "without --via" in v["fix"]
    assert r["explained_by"] == "via-breaks-auth-persistence"


def test_reauth_with_via_keeps_authentication_without_via(shunt, lab_origin, tmp_path):
    # the same server, the same client, a proxy that adds no Via: one handshake
    path, s = lab_capture(shunt, lab_origin, tmp_path, ["--auth", "ntlm", "--reauth-with-via"],
                          ["--requests", 4])
    assert (s["ok"], s["connections_opened"], s["handshakes"]) == (4, 1, 1)
    assert findings(path)[0] == []


def test_via_without_reauthenticating_server_is_no_finding(shunt, lab_origin, tmp_path):
    # Via on every request, but the server keeps the authentication: nothing to say
    path, s = lab_capture(shunt, lab_origin, tmp_path, ["--auth", "ntlm"], ["--requests", 4],
                          ["--via"])
    assert s["handshakes"] == 1
    assert findings(path)[0] == []


def ntlm_token(kind):
    """An NTLM message of type <kind> (1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE), base64."""
    return base64.b64encode(b"NTLMSSP\x00" + bytes([kind, 0, 0, 0]) + bytes(8)).decode()


def ntlm_entries(t, conn, path, via, server, handshake=True):
    """HAR entries of one request on connection <conn>: with <handshake>, the three legs of an
    NTLM handshake (bare 401, 401 with the CHALLENGE, 200); otherwise one 200 without
    credentials. <via> is the request's Via value or None."""
    req = [("Host", "intranet.example")] + ([("Via", via)] if via else [])
    srv = [("Server", server)] if server else []
    if not handshake:
        return [har_entry(t, U + path, req, 200, srv + [("Content-Length", "2")], conn=conn)]
    return [
        har_entry(t, U + path, req, 401, srv + [("WWW-Authenticate", "NTLM"),
                                                ("Content-Length", "2")], conn=conn),
        har_entry(t + 1, U + path, req + [("Authorization", "NTLM " + ntlm_token(1))], 401,
                  srv + [("WWW-Authenticate", "NTLM " + ntlm_token(2)),
                         ("Content-Length", "2")], conn=conn),
        har_entry(t + 2, U + path, req + [("Authorization", "NTLM " + ntlm_token(3))], 200,
                  srv + [("Content-Length", "2")], conn=conn),
    ]


def via_har(tmp_path, name, via, server, contrast=False):
    """Two requests on one connection, each with a full NTLM handshake (the second one a
    repeat), and with <contrast> a second connection without Via whose second request kept
    the authentication."""
    entries = ntlm_entries(0, "1", "a", via, server) + ntlm_entries(3, "1", "b", via, server)
    if contrast:
        entries += ntlm_entries(10, "2", "c", None, server) + \
            ntlm_entries(13, "2", "d", None, server, handshake=False)
    return write_har(tmp_path / name, entries)


def test_har_via_to_iis_is_certain_with_a_contrast(tmp_path):
    ids, doc = findings(via_har(tmp_path, "iis.har", "1.1 squid", "Microsoft-IIS/10.0",
                                contrast=True))
    assert ids == ["via-breaks-auth-persistence"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["confidence"]) == (1, "handshakes", "certain")
    assert f["examples"] == {"connections": [1], "exchanges": [4]}
    assert "Via (1.1 squid)." not in f["what"]  # the client sent it: not the recorder's
    assert "requests without Via to the same origin kept their authentication" in f["what"]
    # without the contrast, Via is only the likely cause (authPersistSingleRequest would do
    # the same to every request)
    ids, doc = findings(via_har(tmp_path, "iis1.har", "1.1 squid", "Microsoft-IIS/10.0"))
    assert ids == ["via-breaks-auth-persistence"]
    assert doc["findings"][0]["confidence"] == "likely"
    # a stripped Server field may hide IIS
    ids, doc = findings(via_har(tmp_path, "anon.har", "1.1 squid", None))
    assert ids == ["via-breaks-auth-persistence"]
    assert "no Server field" in doc["findings"][0]["what"]


@pytest.mark.parametrize("via, server", [("1.1 squid", "nginx"),
                                         (None, "Microsoft-IIS/10.0")])
def test_har_via_to_other_servers_or_iis_without_via_is_no_finding(tmp_path, via, server):
    assert findings(via_har(tmp_path, "x.har", via, server))[0] == []


# ----------------------------------------------------------------------------- client quirks

JAVA = "Java/1.8.0_392"
PWSH = ("Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.19045; en-US) "
        "PowerShell/7.4.1")


@pytest.mark.parametrize("ua, connection, quirk", [
    (JAVA, "Upgrade", "java-connection-token"),
    (JAVA, "keep-alive", None),       # exactly keep-alive: Java keeps it
    ("curl/8.0", "Upgrade", None),    # not Java: nothing to say
])
def test_java_with_connection_other_than_keepalive_is_client_quirk(shunt, origin, tmp_path,
                                                                    ua, connection, quirk):
    origin.handler = peers.reply_with(
        f"HTTP/1.1 200 OK\r\nConnection: {connection}\r\nContent-Length: 2\r\n\r\nok".encode())
    path = capture(shunt, tmp_path, [["-A", ua, f"{origin.url}/a", f"{origin.url}/b"]])
    ids, doc = findings(path)
    if quirk is None:
        assert ids == []
        return
    assert ids == ["client-quirk"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["confidence"]) == (2, "exchanges", "likely")
    assert f["examples"] == {"connections": [1], "exchanges": [1, 2]}
    assert f["what"].startswith("java-connection-token (Java's HttpURLConnection): 2 "
                                "exchanges where the client treats an HTTP/1.1 response")
    assert "sun/net/www/http/HttpClient.java" in f["what"]


def java_like_client(proxy_port, url, n):
    """Java's HttpURLConnection against a response whose Connection is not exactly
    keep-alive: reads each response whole, closes the connection (FIN) and opens a new one
    for the next request."""
    host = url.split("/")[2]
    for i in range(n):
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=peers.WAIT) as c:
            c.sendall(f"GET {url}/{i} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {JAVA}\r\n"
                      f"Accept: */*\r\n\r\n".encode())
            got = b""
            while not (b"\r\n\r\n" in got and got.endswith(b"ok")):
                d = c.recv(4096)
                assert d, got
                got += d
            c.shutdown(socket.SHUT_WR)


def test_a_quirk_that_explains_the_closes_is_not_blamed_on_the_client_again(shunt, origin,
                                                                             tmp_path):
    # Issue 11: Java closes each connection after a response whose Connection is not
    # exactly keep-alive: client-quirk names why; those closes are not also
    # client-closes-early (nor low-reuse) with "let the client keep its connections".
    origin.handler = peers.reply_with(
        b"HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nok")
    path = tmp_path / "java.db"
    px = shunt("--capture", path)
    java_like_client(px.port, origin.url, 5)
    assert px.stop() == []
    ids, doc = findings(path)
    assert ids == ["client-quirk"]
    f = doc["findings"][0]
    assert f["what"].startswith("java-connection-token")
    assert "4 connections closed by the client right after, then opened again" in f["what"]
    assert f["impact"]["connections"] == 4


@pytest.mark.parametrize("proxy_args, found", [(["--no-proxy-support"], True), ([], False)])
def test_dotnet_ntlm_through_proxy_without_proxy_support_is_client_quirk(
        shunt, lab_origin, tmp_path, proxy_args, found):
    o = lab_origin("-q", "--auth", "ntlm")
    path = capture(shunt, tmp_path, [["-A", PWSH, o.url("/")]], proxy_args=proxy_args)
    ids, doc = findings(path)
    if not found:  # shunt adds Proxy-Support itself
        assert ids == []
        return
    assert ids == ["client-quirk"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["examples"]["exchanges"]) == (1, "exchanges", [1])
    assert f["what"].startswith("dotnet-proxy-support (.NET's HttpClient (PowerShell)): 1 "
                                "exchange where the client does not answer")
    assert "AuthenticationHelper.NtAuth.cs" in f["what"]


@pytest.mark.parametrize("ua, quirk", [("curl/8.0", "http10-keepalive-curl"),
                                       ("Go-http-client/1.1", "http10-keepalive-go"),
                                       ("Mozilla/5.0 Chrome/120.0 Safari/537.36",
                                        "http10-keepalive-chrome"),
                                       ("Wget/1.21", None)])
def test_http10_keepalive_answered_in_11_is_client_quirk(tmp_path, ua, quirk):
    req = [("Host", "intranet.example"), ("User-Agent", ua), ("Connection", "keep-alive")]
    e = har_entry(0, U, req, 200, [("Server", "nginx"), ("Content-Length", "2")],
                  http="HTTP/1.0")
    e["response"]["httpVersion"] = "HTTP/1.1"
    ka = har_entry(1, U + "b", req, 200, [("Connection", "keep-alive"),
                                          ("Content-Length", "2")], http="HTTP/1.0")
    ids, doc = findings(write_har(tmp_path / "10.har", [e, ka]))
    if quirk is None:
        assert ids == []
        return
    assert ids == ["client-quirk"]
    f = doc["findings"][0]
    assert (f["count"], f["examples"]["exchanges"]) == (1, [1])
    assert f["what"].startswith(quirk + " (")
