"""test_har.py - `shunt export --har` and `shunt import`: HAR 1.2 written from real and known
captures and checked by a schema validator from npm (har-validator); HARs in the shape of
each producer (Chrome current and old, Firefox, Fiddler, mitmproxy) imported with their
connections checked exactly; bad input; the round trip export -> import -> export.

The producers' HARs are built here (har_* functions) and kept in tests/data/har/ (a test
checks that the kept files are what the builders make; `python3 tests/integration/test_har.py`
rewrites them). docs/har.md describes the fields and the inference rules.
"""
import base64
import copy
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import peers
from captures import T0, Capture, head, sample
from peers import get, reply_with, response

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "har"


# ----------------------------------------------------------------------------- helpers


def run(*args, check=None):
    """Runs `shunt ARGS`; returns the CompletedProcess (text). A crash or sanitizer report
    fails the test whatever the exit status."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([peers.SHUNT_BIN] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode >= 0, f"shunt killed by signal {-p.returncode}: {p.stderr}"
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}, want {check}: {p.stderr}"
    return p


def validate(path):
    """Checks <path> against the HAR 1.2 schema with har-validator (npm); returns the HAR."""
    node = peers.need("node")
    mod = ROOT / "node_modules" / "har-validator"
    if not mod.is_dir():
        raise peers.PeerError("node_modules/har-validator is missing: run `npm ci` at the root")
    script = (
        "const v = require(process.argv[1]);"
        "const har = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));"
        "v.har(har).then(() => console.log('valid'),"
        " e => { console.log(JSON.stringify(e.errors || String(e))); process.exit(1); });"
    )
    p = subprocess.run([node, "-e", script, str(mod), str(path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "valid", f"har-validator: {p.stdout}{p.stderr}"
    return json.loads(Path(path).read_text())


def export(cap, out, *filters, check=0):
    p = run("export", cap, "--har", out, *filters, check=check)
    return p


def db(path):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    return c


def rows(path, sql, *args):
    with db(path) as c:
        return [dict(r) for r in c.execute(sql, args)]


def one_line_error(p, prefix):
    """The process failed with exit 2 and one line on stderr that starts with <prefix>."""
    assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
    lines = p.stderr.strip("\n").split("\n")
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


def import_har(tmp_path, har, name="in.har", check=0):
    src = tmp_path / name
    if isinstance(har, bytes):
        src.write_bytes(har)
    else:
        src.write_text(json.dumps(har) if not isinstance(har, str) else har)
    out = tmp_path / (name + ".db")
    p = run("import", src, "--capture", out, check=check)
    return src, out, p


def conn_pattern(path):
    """conn_id of each exchange in start order."""
    return [r["conn_id"] for r in rows(path, "SELECT conn_id FROM exchanges ORDER BY started_us, id")]


# ----------------------------------------------------------------------------- producers' HARs

# The same start for every built HAR: 2024-05-01 10:00:00 UTC.
BASE = "2024-05-01T10:00:"
BASE_US = 1714557600 * 1_000_000


def iso(ms, tz="Z", digits=3):
    """BASE + <ms> milliseconds as HAR writes it, with <digits> fraction digits."""
    s, frac = divmod(ms * 10 ** (digits - 3) if digits >= 3 else ms, 10 ** digits)
    return f"{BASE}{int(s):02d}.{int(frac):0{digits}d}{tz}"


def hdrs(*pairs):
    return [{"name": n, "value": v} for n, v in pairs]


def entry(ms, url, time_ms, connect, method="GET", status=200, version="HTTP/1.1",
          req_headers=None, resp_headers=None, content=None, ip="93.184.216.34", when=None,
          timings=None, **extra):
    host = url.split("/")[2]
    e = {
        "startedDateTime": when or iso(ms),
        "time": time_ms,
        "request": {
            "method": method, "url": url, "httpVersion": version, "cookies": [],
            "headers": req_headers if req_headers is not None
            else hdrs(("Host", host), ("Accept", "*/*")),
            "queryString": [], "headersSize": -1, "bodySize": 0,
        },
        "response": {
            "status": status, "statusText": "OK" if status == 200 else "", "httpVersion": version,
            "cookies": [],
            "headers": resp_headers if resp_headers is not None
            else hdrs(("Content-Type", "text/plain"), ("Content-Length", "2")),
            "content": content or {"size": 2, "mimeType": "text/plain", "text": "ok"},
            "redirectURL": "", "headersSize": -1, "bodySize": 2,
        },
        "cache": {},
        "timings": timings or {"blocked": 1, "dns": -1, "ssl": -1, "connect": connect, "send": 0.5,
                               "wait": time_ms - 2.5 - max(connect, 0), "receive": 1},
    }
    if ip is not None:
        e["serverIPAddress"] = ip
    e.update(extra)
    return e


def har(creator, version, entries, **log_extra):
    log = {"version": "1.2", "creator": {"name": creator, "version": version}}
    log.update(log_extra)
    log["entries"] = entries
    return {"log": log}


def har_chrome_current():
    """Chrome 120+: `_connectionId` is the socket; `connection` is the server's port."""
    u = "https://example.com"
    es = [
        entry(0, f"{u}/index.html?q=1", 100, 20, _connectionId="1043", connection="443",
              _initiator={"type": "other"}, _priority="VeryHigh", _resourceType="document",
              version="http/1.1",
              req_headers=hdrs(("Host", "example.com"), ("Accept", "*/*"), ("Cookie", "a=1")),
              resp_headers=hdrs(("Content-Type", "image/png"), ("Content-Length", "4")),
              content={"size": 4, "mimeType": "image/png",
                       "text": base64.b64encode(b"\x89PNG").decode(), "encoding": "base64"}),
        entry(5, f"{u}/a.css", 60, 18, _connectionId="1044", connection="443"),
        entry(200, f"{u}/b.js", 30, -1, _connectionId="1043", connection="443"),
        entry(210, f"{u}/c.js", 40, 15, _connectionId="1051", connection="443"),
        entry(300, f"{u}/d.js", 20, -1, _connectionId="1044", connection="443", version="h2",
              req_headers=hdrs((":method", "GET"), (":authority", "example.com"),
                               (":path", "/d.js"), ("accept", "*/*"))),
    ]
    return har("WebInspector", "537.36", es,
               pages=[{"startedDateTime": iso(0), "id": "page_1", "title": u,
                       "pageTimings": {"onContentLoad": 300, "onLoad": 400}}])


def har_chrome_old():
    """Chrome before `_connectionId`: `connection` holds its connection id."""
    u = "https://example.com"
    es = [
        entry(0, f"{u}/", 100, 20, connection="40211"),
        entry(5, f"{u}/a.css", 60, 18, connection="40215"),
        entry(200, f"{u}/b.js", 30, -1, connection="40211"),
        entry(210, f"{u}/c.js", 40, 15, connection="40260"),
        entry(300, f"{u}/d.js", 20, -1, connection="40215"),
    ]
    return har("WebInspector", "537.36", es)


def har_chrome_ports():
    """Current Chrome with `_connectionId` removed (a sanitizer did it): `connection` is the
    server port of every entry, so it names nothing and timings decide."""
    u = "https://example.com"
    es = [
        entry(0, f"{u}/", 100, 20, connection="443"),          # conn 1, busy until 100
        entry(10, f"{u}/a", 50, 15, connection="443"),         # new: conn 2, until 60
        entry(70, f"{u}/b", 50, -1, connection="443"),         # conn 2 idle: reused, until 120
        entry(80, f"{u}/c", 100, -1, connection="443"),        # 2 and 1 busy: conn 3 (reused)
        entry(130, f"{u}/d", 10, -1, connection="443"),        # last before: c (conn 3, busy),
                                                               # b (conn 2, idle) -> conn 2
        entry(140, "https://cdn.example.net/x", 10, 9, connection="443"),  # another origin
    ]
    return har("WebInspector", "537.36", es)


def har_firefox():
    """Firefox: `connection` is the server port; a reused connection has connect 0."""
    u = "http://example.org:8080"

    def t(connect, wait):
        return {"blocked": 0, "dns": 0, "connect": connect, "ssl": 0, "send": 0, "wait": wait,
                "receive": 1}

    es = [
        entry(0, f"{u}/", 40, 25, connection="8080", ip="198.51.100.7", timings=t(25, 14),
              when=f"{BASE}00.000+02:00", _securityState="insecure"),
        entry(200, f"{u}/a", 20, 0, connection="8080", ip="198.51.100.7", timings=t(0, 19),
              when=f"{BASE}00.200+02:00"),
        entry(210, f"{u}/b", 50, 30, connection="8080", ip="198.51.100.7", timings=t(30, 19),
              when=f"{BASE}00.210+02:00"),
        entry(500, f"{u}/c", 20, 0, connection="8080", ip="198.51.100.7", timings=t(0, 19),
              when=f"{BASE}00.500+02:00"),
        entry(600, "http://other.example/", 20, 5, connection="80", ip="198.51.100.8",
              timings=t(5, 14), when=f"{BASE}00.600+02:00"),
    ]
    return har("Firefox", "125.0", es, browser={"name": "Firefox", "version": "125.0"})


def har_fiddler():
    """Fiddler: `connection` is the client port; a port seen again after its connection ended
    (and with a connect) is a new connection. Times with 7 fraction digits (.NET)."""
    u = "http://intranet.test"

    def f(ms, path, connect, port):
        return entry(ms, f"{u}{path}", 50, connect, connection=port, ip="10.0.0.5",
                     when=iso(ms, "+00:00", 7))

    es = [
        f(0, "/", 10, "50001"),
        f(100, "/a", 12, "50002"),
        f(200, "/b", -1, "50001"),
        f(5000, "/c", 8, "50001"),   # 50001 again after its connection ended: a new one
        f(5100, "/d", -1, "50002"),
        f(5120, "/e", 5, "50002"),   # 50002 still busy (until 5150): the same connection
    ]
    es[0]["request"]["headers"].append({"name": "Authorization", "value": "NTLM TlRMTVNTUAABAAAA"})
    return har("Fiddler", "5.0.20211.51073", es)


def har_mitmproxy():
    """mitmproxy's exporthar: no connection field; connect -1 when the server connection was
    seen before, null when unknown; no blocked/dns; microsecond times with +00:00."""
    u = "https://api.test"

    def t(connect, send=0.2, wait=10, receive=1):
        return {"connect": connect, "ssl": None if connect is None or connect < 0 else 3.0,
                "send": send, "receive": receive, "wait": wait}

    def w(ms):
        return f"{BASE}{ms // 1000:02d}.{ms % 1000:03d}123+00:00"

    es = [
        entry(0, f"{u}/1", 100, 20, ip="203.0.113.9", timings=t(20.0), when=w(0)),
        entry(10, f"{u}/2", 40, 15, ip="203.0.113.9", timings=t(15.0), when=w(10)),
        entry(60, f"{u}/3", 40, -1, ip="203.0.113.9", timings=t(-1.0), when=w(60)),
        entry(70, f"{u}/4", 40, -1, ip="203.0.113.9", timings=t(-1.0), when=w(70)),
        entry(200, f"{u}/5", 10, -1, ip="203.0.113.9", timings=t(-1.0), when=w(200)),
        entry(210, "https://down.test/", 0, None, status=0, ip=None, timings=t(None, 0, 0, 0),
              when=w(210)),
    ]
    es[5]["response"] = {"status": 0, "statusText": "", "httpVersion": "", "headers": [],
                         "cookies": [], "content": {}, "redirectURL": "", "headersSize": -1,
                         "bodySize": -1, "_transferSize": 0, "_error": "Connection refused"}
    es[1]["request"].update(method="POST", bodySize=9, postData={
        "mimeType": "application/json", "text": '{"a": 1}\n', "params": []})
    return har("mitmproxy exporthar", "0.1", es)


PRODUCERS = {
    "chrome-current.har": har_chrome_current,
    "chrome-old.har": har_chrome_old,
    "chrome-ports.har": har_chrome_ports,
    "firefox.har": har_firefox,
    "fiddler.har": har_fiddler,
    "mitmproxy.har": har_mitmproxy,
}


def write_samples():
    DATA.mkdir(parents=True, exist_ok=True)
    for name, make in PRODUCERS.items():
        (DATA / name).write_text(json.dumps(make(), indent=1) + "\n")


# ----------------------------------------------------------------------------- export


def test_export_of_recorded_traffic_validates_and_keeps_what_went_on_the_wire(
        shunt, origin, tmp_path):
    cap, out = tmp_path / "c.db", tmp_path / "out.har"
    binary = bytes(range(256))
    origin.handler = reply_with(
        response(headers=[b"Content-Type: text/plain", b"Set-Cookie: sid=abc; Path=/; HttpOnly"],
                 body=b"hello"),
        response(headers=[b"Content-Type: application/octet-stream"], body=binary),
    )
    px = shunt("--capture", cap)
    req1 = get(origin.host, "/a?x=1&y=2", extra=b"Proxy-Connection: Keep-Alive\r\nCookie: k=v; k2=v2\r\n")
    req2 = get(origin.host, "/bin", method=b"POST",
               extra=b"Content-Type: application/octet-stream\r\nContent-Length: 4\r\n",
               body=b"\x00\xff\x10\x80")
    with px.client() as c:
        r1 = c.exchange(req1)
        r2 = c.exchange(req2)
        client_port = c.port
    assert r1.body == b"hello" and r2.body == binary
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0

    export(cap, out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    h = validate(out)
    log = h["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "shunt"
    assert log["_shunt"]["incomplete"] is False
    e1, e2 = log["entries"]
    sent = [bytes(x.received) for x in origin.conns]
    assert len(sent) == 1  # one upstream connection, kept alive
    # request headers are those sent upstream, in wire order (Proxy-Connection removed)
    first_sent = sent[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert [(x["name"], x["value"]) for x in e1["request"]["headers"]] == [
        tuple(l.decode().split(": ", 1)) for l in first_sent[1:]]
    assert e1["request"]["headersSize"] == len(sent[0].split(b"\r\n\r\n")[0]) + 4
    assert e1["request"]["url"] == f"http://{origin.host}/a?x=1&y=2"
    assert e1["request"]["queryString"] == hdrs(("x", "1"), ("y", "2"))
    assert e1["request"]["cookies"] == hdrs(("k", "v"), ("k2", "v2"))
    assert e1["response"]["cookies"] == [{"name": "sid", "value": "abc", "path": "/", "httpOnly": True}]
    assert e1["response"]["content"] == {"size": 5, "mimeType": "text/plain", "text": "hello"}
    assert e1["response"]["status"] == 200 and e1["response"]["statusText"] == "OK"
    assert e1["response"]["headersSize"] + e1["response"]["bodySize"] == len(r1.raw)
    # binary bodies are base64: HAR's `encoding` on content, `_encoding` on postData
    assert e2["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(e2["response"]["content"]["text"]) == binary
    assert e2["request"]["postData"]["_encoding"] == "base64"
    assert base64.b64decode(e2["request"]["postData"]["text"]) == b"\x00\xff\x10\x80"
    assert e2["request"]["postData"]["mimeType"] == "application/octet-stream"
    # connection ids as Chrome writes them, and shunt's own facts
    for e in (e1, e2):
        assert e["connection"] == e["_connectionId"] == str(e["_shunt"]["conn_id"])
        assert e["serverIPAddress"] == "127.0.0.1"
        t = e["timings"]
        assert set(t) == {"blocked", "dns", "connect", "send", "wait", "receive", "ssl"}
        assert t["ssl"] == -1
        assert abs(e["time"] - sum(v for v in t.values() if v >= 0)) < 1e-6
        assert e["startedDateTime"].endswith("Z") and len(e["startedDateTime"]) == 24
    s1, s2 = e1["_shunt"], e2["_shunt"]
    assert (s1["idx"], s2["idx"]) == (1, 2) and s1["conn_id"] == s2["conn_id"]
    assert (s1["upstream_reused"], s2["upstream_reused"]) == (0, 1)
    assert s1["client_port"] == client_port
    assert s1["upstream_port"] == origin.conns[0].peer_port
    assert s1["request_head_received"] == req1.decode()
    assert "Proxy-Connection" not in s1["request_head_sent"]
    assert {"what": "remove Proxy-Connection", "by": "proxy", "in_request": True} in s1["changes"]
    assert s1["closer"] == "client" and s1["close_how"] == "FIN"
    assert s1["response_head_received"] == r1.raw[: r1.raw.index(b"\r\n\r\n") + 4].decode()


def test_export_of_a_known_capture_gives_exact_entries(tmp_path):
    cap, out = sample(tmp_path / "s.db"), tmp_path / "s.har"
    export(cap, out)
    h = validate(out)
    es = h["log"]["entries"]
    assert [e["_shunt"]["id"] for e in es] == [1, 2, 3, 4, 5, 6]
    e1, e2, e3, e4, e5, e6 = es
    assert e1["startedDateTime"] == "2026-11-26T12:00:00.002Z"
    assert e1["timings"] == {"blocked": 0.01, "dns": -1, "connect": 0.52, "send": 0.03,
                             "wait": 11, "receive": 0.785, "ssl": -1}
    assert e1["time"] == 12.345
    assert [x["name"] for x in e1["request"]["headers"]] == ["Host", "Accept"]  # as sent
    assert e1["_shunt"]["request_head_received"].startswith("GET http://origin.test/index.html")
    assert e1["response"]["content"]["text"] == "<html>\r\nhello \u00e9t\u00e9\r\n</html>\r\n"
    assert (e1["_shunt"]["closer"], e1["_shunt"]["close_how"]) == ("client", "FIN")
    assert e1["_shunt"]["changes"] == [{"what": "remove Proxy-Connection", "by": "proxy",
                                        "in_request": True}]
    assert e2["response"]["content"]["encoding"] == "base64"
    assert e2["_shunt"]["upstream_reused"] == 1 and e2["connection"] == "1"
    # e3: the response went out changed by a rule; the request body was truncated
    assert [x["name"] for x in e3["response"]["headers"]] == ["Content-Length", "X-Debug"]
    assert "Server: test" in e3["_shunt"]["response_head_received"]
    assert e3["request"]["postData"]["_truncated"] is True
    assert len(e3["request"]["postData"]["text"]) == 2500 and e3["request"]["bodySize"] == 3012
    assert e3["_shunt"]["changes"][0] == {"what": "remove Server", "by": "strip-server",
                                          "in_request": False}
    assert (e3["_shunt"]["closer"], e3["_shunt"]["close_how"]) == ("server", "RST")
    assert e4["_shunt"]["error"] == "upstream refused" and e4["_shunt"]["flags"] == 2
    assert e4["_shunt"]["upstream_id"] != e3["_shunt"]["upstream_id"]
    assert e5["request"]["method"] == "CONNECT" and e5["_shunt"]["flags"] == 8
    assert e5["_shunt"]["closer"] is None and e5["_shunt"]["close_how"] is None
    assert e6["_shunt"]["response_interim"] == "HTTP/1.1 100 Continue\r\n\r\n"


def test_export_takes_the_filter_options(tmp_path):
    cap = sample(tmp_path / "s.db")
    for args, ids in (
        (("--host", "OTHER.test"), [4]),
        (("--status", "200"), [1, 2, 5, 6]),
        (("--conn", "2"), [3, 4]),
        (("--conn=1", "--status=200"), [1, 2]),
    ):
        out = tmp_path / "f.har"
        export(cap, out, *args)
        assert [e["_shunt"]["id"] for e in validate(out)["log"]["entries"]] == ids, args


def test_export_of_an_incomplete_capture_says_so(tmp_path):
    cap, out = sample(tmp_path / "s.db", events_dropped=17), tmp_path / "s.har"
    p = export(cap, out)
    assert "incomplete" in p.stderr and "17" in p.stderr
    log = validate(out)["log"]
    assert log["_shunt"]["incomplete"] is True and log["_shunt"]["events_dropped"] == 17


def test_export_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path):
    cap, out = sample(tmp_path / "s.db"), tmp_path / "s.har"
    out.write_text("old")
    os.chmod(out, 0o644)
    export(cap, out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db", "s.db-shm", "s.db-wal", "s.har"] \
        or sorted(p.name for p in tmp_path.iterdir()) == ["s.db", "s.har"]
    # a failed export leaves the old file alone
    os.chmod(tmp_path, 0o500)
    try:
        if os.geteuid() != 0:  # root writes anyway
            p = export(cap, out, check=1)
            assert "s.har" in p.stderr
    finally:
        os.chmod(tmp_path, 0o700)


def b64(b):
    return base64.b64encode(b).decode()


NTLM1 = b64(b"NTLMSSP\0\x01\0\0\0" + bytes(24))
NTLM2 = b64(b"NTLMSSP\0\x02\0\0\0" + bytes(40))
NTLM3 = b64(b"NTLMSSP\0\x03\0\0\0" + bytes(60))
SPNEGO_KRB = b64(b"\x60\x82\x01\x00\x06\x06\x2b\x06\x01\x05\x05\x02\xa0\x30\x30\x2e"
                 b"\xa0\x0d\x30\x0b\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"
                 + b"\x6e\x82" + bytes(40))
SPNEGO_RESP = b64(b"\xa1\x14\x30\x12\xa0\x03\x0a\x01\x00" + bytes(12))

# (field as captured, as a redacted export writes it)
REDACTIONS = [
    (f"Authorization: NTLM {NTLM1}", "NTLM <redacted: type 1 NEGOTIATE>"),
    (f"Authorization: NTLM {NTLM3}", "NTLM <redacted: type 3 AUTHENTICATE>"),
    (f"Authorization: Negotiate {SPNEGO_KRB}",
     "Negotiate <redacted: NegTokenInit (Kerberos AP-REQ)>"),
    (f"Authorization: Negotiate {SPNEGO_RESP}", "Negotiate <redacted: NegTokenResp>"),
    (f"Authorization: Negotiate {NTLM1}", "Negotiate <redacted: type 1 NEGOTIATE>"),
    ("Authorization: Basic dXNlcjpzZWNyZXQ=", "Basic <redacted>"),
    ("Authorization: Bearer eyJhbGciOi.secret.sig", "Bearer <redacted>"),
    ("Proxy-Authorization: Basic cHJveHk6c2VjcmV0", "Basic <redacted>"),
    ("Cookie: a=1; b=secret; flag", "a=<redacted>; b=<redacted>; <redacted>"),
]
RESP_REDACTIONS = [
    (f"WWW-Authenticate: NTLM {NTLM2}", "NTLM <redacted: type 2 CHALLENGE>"),
    (f"WWW-Authenticate: Negotiate {SPNEGO_RESP}", "Negotiate <redacted: NegTokenResp>"),
    ("WWW-Authenticate: Negotiate", "Negotiate"),
    ('WWW-Authenticate: Basic realm="corp"', 'Basic realm="corp"'),
    ("Proxy-Authenticate: NTLM", "NTLM"),
    ("Set-Cookie: sid=s3cr3t; Path=/; HttpOnly", "sid=<redacted>; Path=/; HttpOnly"),
]


@pytest.mark.parametrize("i", range(len(REDACTIONS)))
def test_export_redact_replaces_credentials_by_markers_that_keep_scheme_and_leg(tmp_path, i):
    field, want = REDACTIONS[i]
    rfield, rwant = RESP_REDACTIONS[i % len(RESP_REDACTIONS)]
    cap = tmp_path / "c.db"
    req = head(b"GET /a?token=t1&x=2 HTTP/1.1", b"Host: origin.test", field.encode())
    resp = head(b"HTTP/1.1 401 Unauthorized", rfield.encode(), b"Content-Length: 0")
    with Capture(cap) as c:
        conn = c.connection()
        c.exchange(conn, path="/a?token=t1&x=2", status=401, req_head=req, resp_head=resp,
                   req_head_sent=req + b"", resp_head_sent=resp)
    out = tmp_path / "r.har"
    p = export(cap, out, "--redact")
    assert p.stderr.endswith("1 entries, credentials redacted\n"), p.stderr
    har = validate(out)
    text = out.read_text()
    log = har["log"]
    assert log["_shunt"]["redacted"] is True
    assert "redacted" in log["comment"]
    e = log["entries"][0]
    name = field.split(":")[0]
    assert [h["value"] for h in e["request"]["headers"] if h["name"] == name] == [want]
    rname = rfield.split(":")[0]
    assert [h["value"] for h in e["response"]["headers"] if h["name"] == rname] == [rwant]
    # the raw heads under _shunt are redacted too, line for line
    for key in ("request_head_received", "request_head_sent"):
        assert f"{name}: {want}\r\n" in e["_shunt"][key]
    assert f"{rname}: {rwant}\r\n" in e["_shunt"]["response_head_received"]
    for secret in (field.split(" ", 2)[-1], rfield.split(" ", 2)[-1]):
        if "<redacted" not in want + rwant or secret in (want, rwant):
            continue
        assert secret.split(";")[0] not in text.replace(want, "").replace(rwant, "")
    # cookies keep their names, query strings stay (docs/har.md says why)
    if name == "Cookie":
        assert e["request"]["cookies"] == [{"name": "a", "value": "<redacted>"},
                                           {"name": "b", "value": "<redacted>"},
                                           {"name": "<redacted>", "value": ""}]
    assert e["request"]["queryString"] == [{"name": "token", "value": "t1"},
                                           {"name": "x", "value": "2"}]
    # without --redact nothing changes
    plain = tmp_path / "p.har"
    export(cap, plain)
    pe = json.loads(plain.read_text())["log"]
    assert "comment" not in pe and "redacted" not in pe["_shunt"]
    assert [h["value"] for h in pe["entries"][0]["request"]["headers"] if h["name"] == name] == \
        [field.split(": ", 1)[1]]


def test_diagnose_of_the_redacted_story_har_gives_the_same_first_finding(tmp_path):
    demo = tmp_path / "demo"
    run("lab", "demo", "--requests", "6", "--dir", demo, check=0)
    plain, red = tmp_path / "plain.har", tmp_path / "red.har"
    export(demo / "demo.db", plain)
    export(demo / "demo.db", red, "--redact")
    assert "Negotiate <redacted: NegTokenInit" in red.read_text()
    findings = []
    for h in (demo / "demo.db", plain, red):
        p = run("diagnose", h, "--json", check=1)
        findings.append([(f["id"], f["count"], f["impact"]["handshakes"])
                         for f in json.loads(p.stdout)["findings"]])
    assert findings[0][0][0] == "wininet-auth-close"
    assert findings[2] == findings[1], findings
    assert findings[2][0] == findings[0][0]


def test_export_to_stdout(tmp_path):
    cap = sample(tmp_path / "s.db")
    p = run("export", cap, "--har", "-", check=0)
    assert len(json.loads(p.stdout)["log"]["entries"]) == 6


@pytest.mark.parametrize("case", ["missing", "not-sqlite", "other-sqlite", "newer", "no-har",
                                  "no-file", "bad-status"])
def test_export_refuses_what_is_not_a_capture_with_one_line(tmp_path, case):
    f = tmp_path / "x.db"
    args = [f, "--har", tmp_path / "o.har"]
    if case == "not-sqlite":
        f.write_text("hello, not a database\n" * 100)
    elif case == "other-sqlite":
        with sqlite3.connect(f) as c:
            c.execute("CREATE TABLE t (x)")
    elif case == "newer":
        sample(f)
        with sqlite3.connect(f) as c:
            c.execute("PRAGMA user_version = 99")
    elif case in ("no-har", "bad-status"):
        sample(f)
        args = [f] if case == "no-har" else [f, "--har", tmp_path / "o.har", "--status", "abc"]
    elif case == "no-file":
        args = ["--har", tmp_path / "o.har"]
    p = run("export", *args)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("shunt export: ")
    if case in ("missing", "not-sqlite", "other-sqlite", "newer"):
        line = one_line_error(p, f"shunt export: {f}: ")
        assert {"missing": "No such file", "not-sqlite": "not a shunt capture",
                "other-sqlite": "not a shunt capture", "newer": "newer shunt"}[case] in line
    assert not (tmp_path / "o.har").exists()


VIEW_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="perf-cascade.min.js"></script></head>
<body><div id="out"></div><pre id="result">pending</pre><script>
var res = document.getElementById('result');
try {
  var har = %s;
  var svg = perfCascade.fromHar(har.log, {});
  document.getElementById('out').appendChild(svg);
  var rows = svg.querySelectorAll('.row-item');
  res.textContent = JSON.stringify({ok: true, rows: rows.length,
    labels: Array.prototype.map.call(rows, function (r) { return r.textContent; })});
} catch (e) { res.textContent = JSON.stringify({ok: false, error: String(e && e.stack || e)}); }
</script></body></html>"""


def view_in_chromium(tmp_path, har_path):
    """Loads <har_path> into PerfCascade (a HAR waterfall viewer from npm) in headless
    Chromium, from a page served on loopback; returns what the page reports: the rows it
    drew and their text."""
    import http.server
    import re
    import shutil
    import threading

    chromium = peers.need("chromium")
    lib = ROOT / "node_modules" / "perf-cascade" / "dist" / "perf-cascade.min.js"
    if not lib.is_file():
        raise peers.PeerError("node_modules/perf-cascade is missing: run `npm ci` at the root")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(lib, site / "perf-cascade.min.js")
    (site / "view.html").write_text(VIEW_PAGE % Path(har_path).read_text())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(site), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        p = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000",
             "--dump-dom", f"http://127.0.0.1:{srv.server_address[1]}/view.html"],
            capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    finally:
        srv.shutdown()
        srv.server_close()
    m = re.search(r'<pre id="result">(.*?)</pre>', p.stdout, re.S)
    assert m, f"chromium gave no result (exit {p.returncode}): {p.stderr[-2000:]}"
    import html
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.deadline(120)
def test_export_loads_in_a_har_viewer_in_headless_chromium(tmp_path):
    cap, out = sample(tmp_path / "s.db"), tmp_path / "s.har"
    export(cap, out)
    got = view_in_chromium(tmp_path, out)
    assert got["ok"], got
    assert got["rows"] == 6
    assert "origin.test/index.html" in got["labels"][0]
    assert "other.test/down" in got["labels"][3]


# ----------------------------------------------------------------------------- import


def test_kept_samples_are_what_the_builders_make():
    for name, make in PRODUCERS.items():
        assert json.loads((DATA / name).read_text()) == make(), \
            f"tests/data/har/{name} differs: run python3 tests/integration/test_har.py"


def check_capture_row(out, src, detail):
    (c,) = rows(out, "SELECT * FROM capture")
    assert c["source"] == "har" and c["source_detail"] == detail
    assert c["command_line"] == f"shunt import {src} --capture {out}"
    assert c["events_dropped"] == 0 and c["stopped_us"] >= c["started_us"]


def test_import_chrome_current_reads_connection_id_not_the_port(tmp_path):
    src, out, p = import_har(tmp_path, har_chrome_current())
    assert "5 entries from chrome, 3 connections" in p.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    check_capture_row(out, src, "WebInspector 537.36")
    assert conn_pattern(out) == [1, 2, 1, 3, 2]
    ex = rows(out, "SELECT * FROM exchanges ORDER BY id")
    assert [e["idx"] for e in ex] == [1, 1, 2, 1, 2]
    assert [e["upstream_reused"] for e in ex] == [0, 0, 1, 0, 1]
    e = ex[0]
    assert e["started_us"] == BASE_US and e["duration_us"] == 100_000
    assert (e["t_blocked"], e["t_dns"], e["t_connect"], e["t_send"], e["t_receive"]) == (
        1000, -1, 20_000, 500, 1000)
    assert bytes(e["req_head"]) == (b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                                    b"Accept: */*\r\nCookie: a=1\r\n\r\n")
    assert bytes(e["resp_head"]) == (b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                                     b"Content-Length: 4\r\n\r\n")
    assert e["req_head_sent"] is None and e["resp_head_sent"] is None
    assert (e["method"], e["url"], e["host"], e["path"], e["status"], e["http_version"]) == (
        "GET", "https://example.com/index.html?q=1", "example.com", "/index.html?q=1", 200,
        "http/1.1")
    (body,) = rows(out, "SELECT * FROM bodies WHERE exchange_id = 1")
    assert bytes(body["data"]) == b"\x89PNG" and body["direction"] == 1 and body["truncated"] == 0
    # HTTP/2 pseudo-headers are not HTTP/1 fields
    assert bytes(ex[4]["req_head"]) == b"GET /d.js h2\r\naccept: */*\r\n\r\n"
    conns = rows(out, "SELECT * FROM connections ORDER BY id")
    assert [c["n_exchanges"] for c in conns] == [2, 2, 1]
    assert all(c["closer"] is None and c["close_how"] is None and c["closed_us"] is None
               for c in conns)
    assert all(c["tls"] == 1 for c in conns)
    ups = rows(out, "SELECT * FROM upstreams ORDER BY id")
    assert [(u["conn_id"], u["host"], u["port"], u["addr"]) for u in ups] == [
        (1, "example.com", 443, "93.184.216.34"), (2, "example.com", 443, "93.184.216.34"),
        (3, "example.com", 443, "93.184.216.34")]


def test_import_old_chrome_reads_connection_as_an_id(tmp_path):
    _, out, p = import_har(tmp_path, har_chrome_old())
    assert conn_pattern(out) == [1, 2, 1, 3, 2]


def test_import_chrome_with_ports_only_infers_from_timings(tmp_path):
    _, out, _ = import_har(tmp_path, har_chrome_ports())
    assert conn_pattern(out) == [1, 2, 2, 3, 2, 4]
    ex = rows(out, "SELECT idx, upstream_reused FROM exchanges ORDER BY id")
    assert [(e["idx"], e["upstream_reused"]) for e in ex] == [
        (1, 0), (1, 0), (2, 1), (1, 1), (3, 1), (1, 0)]


def test_import_firefox_reads_connect_zero_as_reused(tmp_path):
    src, out, _ = import_har(tmp_path, har_firefox())
    check_capture_row(out, src, "Firefox 125.0")
    assert conn_pattern(out) == [1, 1, 2, 2, 3]
    ex = rows(out, "SELECT * FROM exchanges ORDER BY id")
    # +02:00: two hours earlier in UTC
    assert ex[0]["started_us"] == BASE_US - 2 * 3600 * 1_000_000
    assert bytes(ex[0]["req_head"]).startswith(b"GET / HTTP/1.1\r\nHost: example.org:8080\r\n")
    ups = rows(out, "SELECT conn_id, host, port, addr FROM upstreams ORDER BY id")
    assert ups[0] == {"conn_id": 1, "host": "example.org", "port": 8080, "addr": "198.51.100.7"}
    assert ups[2]["host"] == "other.example" and ups[2]["port"] == 80


def test_import_fiddler_reads_client_ports_and_their_reuse(tmp_path):
    _, out, p = import_har(tmp_path, har_fiddler())
    assert conn_pattern(out) == [1, 2, 1, 3, 2, 2]
    conns = rows(out, "SELECT id, client_port, auth_scheme, n_exchanges FROM connections ORDER BY id")
    assert [(c["client_port"], c["n_exchanges"]) for c in conns] == [(50001, 2), (50002, 3),
                                                                     (50001, 1)]
    assert conns[0]["auth_scheme"] == "NTLM" and conns[1]["auth_scheme"] is None
    ex = rows(out, "SELECT started_us FROM exchanges ORDER BY id")
    assert ex[3]["started_us"] == BASE_US + 5_000_000  # 7 fraction digits read


def test_import_reads_a_har_that_starts_with_a_byte_order_mark(tmp_path):
    """Windows tools write a UTF-8 BOM first; it is no part of the JSON (RFC 8259 8.1)."""
    plain = json.dumps(har_fiddler()).encode()
    _, out, _ = import_har(tmp_path, b"\xef\xbb\xbf" + plain, name="bom.har")
    _, ref, _ = import_har(tmp_path, plain, name="plain.har")
    q = "SELECT conn_id, url, status FROM exchanges ORDER BY id"
    assert rows(out, q) == rows(ref, q) and len(rows(out, q)) == 6
    # an error after a byte order mark is placed in the file as given
    _, _, p = import_har(tmp_path, b"\xef\xbb\xbf" + b'{"log": nope}', name="bad.har", check=2)
    assert "line 1 column 13 (byte 15)" in p.stderr, p.stderr


def test_import_of_many_connections_sums_each_upstream(tmp_path):
    """3 000 entries, a connection each: every connection and upstream gets its totals (the
    sums were once a subquery per upstream, quadratic; bench-free check of the result)."""
    entries = [entry(i, f"http://h.example/{i}", 10, 3, connection=str(i + 1))
               for i in range(3000)]
    _, out, _ = import_har(tmp_path, har("t", "1", entries))
    c = rows(out, "SELECT count(*) AS n, sum(n_exchanges = 1) AS one, "
                  "sum(bytes_out > 0) AS out FROM connections")[0]
    u = rows(out, "SELECT count(*) AS n, sum(bytes_in > 0 AND bytes_out > 0) AS both "
                  "FROM upstreams")[0]
    assert (c["n"], c["one"], c["out"]) == (3000, 3000, 3000)
    assert (u["n"], u["both"]) == (3000, 3000)


def test_import_mitmproxy_infers_reuse_from_connect_timings(tmp_path):
    src, out, _ = import_har(tmp_path, har_mitmproxy())
    check_capture_row(out, src, "mitmproxy exporthar 0.1")
    # 1: new; 2: new (parallel); 3 (-1): 2 is idle -> conn 2; 4 (-1): 3, 2 and 1 busy ->
    # conn 3, reused (opened before the HAR); 5 (-1): 4 idle -> conn 3; 6: unknown -> new
    assert conn_pattern(out) == [1, 2, 2, 3, 3, 4]
    ex = rows(out, "SELECT * FROM exchanges ORDER BY id")
    assert ex[0]["started_us"] == BASE_US + 123
    assert ex[0]["t_blocked"] == -1 and ex[0]["t_dns"] == -1 and ex[0]["t_connect"] == 20_000
    assert [e["upstream_reused"] for e in ex] == [0, 0, 1, 1, 1, None]
    assert ex[5]["status"] is None and ex[5]["resp_head"] is None
    assert ex[5]["error"] == "Connection refused" and ex[5]["flags"] & 2
    assert ex[5]["upstream_id"] is not None  # the origin is known, the address not
    body = rows(out, "SELECT data FROM bodies WHERE exchange_id = 2 AND direction = 0")
    assert bytes(body[0]["data"]) == b'{"a": 1}\n' and ex[1]["req_body_size"] == 9


def test_imported_captures_export_to_valid_har(tmp_path):
    for name, make in PRODUCERS.items():
        _, out, _ = import_har(tmp_path, make(), name=name)
        har_out = tmp_path / (name + ".out.har")
        export(out, har_out)
        h = validate(har_out)
        assert len(h["log"]["entries"]) == len(make()["log"]["entries"])


# ----------------------------------------------------------------------------- bad input


def good():
    return har_chrome_current()


def without(path):
    h = good()
    obj = h
    for k in path[:-1]:
        obj = obj[k]
    del obj[path[-1]]
    return h


def setting(path, value):
    h = good()
    obj = h
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value
    return h


BAD = {
    "truncated": (json.dumps(good())[:700], "truncated JSON"),
    "not-json": ("GET / HTTP/1.1\r\n\r\n", "not JSON"),
    "empty": ("", "empty"),
    "json-array": ("[1, 2]", "not a HAR"),
    "no-log": ('{"entries": []}', "not a HAR: no \"log\""),
    "no-entries": (json.dumps({"log": {"version": "1.2"}}), "log.entries is missing"),
    "entries-object": (json.dumps({"log": {"entries": {}}}), "log.entries is not an array"),
    "entry-not-object": (json.dumps({"log": {"entries": [1]}}), "log.entries[0] is not an object"),
    "no-started": (without(["log", "entries", 2, "startedDateTime"]),
                   "log.entries[2].startedDateTime is missing"),
    "bad-date": (setting(["log", "entries", 1, "startedDateTime"], "yesterday"),
                 "log.entries[1].startedDateTime is not an ISO 8601"),
    "no-url": (without(["log", "entries", 3, "request", "url"]), "log.entries[3].request.url is missing"),
    "no-response": (without(["log", "entries", 0, "response"]), "log.entries[0].response is missing"),
    "status-string": (setting(["log", "entries", 4, "response", "status"], "200"),
                      "log.entries[4].response.status is not a number"),
    "headers-object": (setting(["log", "entries", 0, "request", "headers"], {"a": "b"}),
                       "log.entries[0].request.headers is not an array"),
    "header-number": (setting(["log", "entries", 0, "response", "headers", 0, "value"], 5),
                      "log.entries[0].response.headers[0].value is not a string"),
    "timing-string": (setting(["log", "entries", 1, "timings", "wait"], "10"),
                      "log.entries[1].timings.wait is not a number"),
    "bad-base64": (setting(["log", "entries", 0, "response", "content", "text"], "@@@@"),
                   "log.entries[0].response.content.text: invalid base64"),
    "creator-number": (setting(["log", "creator"], 7), "log.creator is not an object"),
    # jansson keeps integers in int64: a larger one is refused, with its place
    "huge-integer": (json.dumps(good()).replace('"1044"', "12345678901234567890", 1),
                     "too big integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_import_rejects_bad_input_with_one_line_and_leaves_no_capture(tmp_path, case):
    content, problem = BAD[case]
    src, out, p = import_har(tmp_path, content, check=None)
    line = one_line_error(p, f"shunt import: {src}: ")
    assert problem in line, line
    assert not out.exists() and not Path(str(out) + "-wal").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.har"]


def test_import_never_overwrites_and_needs_its_input(tmp_path):
    out = tmp_path / "out.db"
    out.write_bytes(b"precious")
    src = tmp_path / "in.har"
    src.write_text(json.dumps(good()))
    p = run("import", src, "--capture", out)
    one_line_error(p, f"shunt import: {out}: exists already")
    assert out.read_bytes() == b"precious"
    p = run("import", tmp_path / "nope.har", "--capture", tmp_path / "new.db")
    one_line_error(p, f"shunt import: {tmp_path / 'nope.har'}: No such file")
    assert not (tmp_path / "new.db").exists()
    p = run("import", src)
    assert p.returncode == 2 and "--capture" in p.stderr


def test_import_survives_hostile_values(tmp_path):
    h = good()
    e = h["log"]["entries"]
    e[0]["request"]["headers"].append({"name": "X-Evil", "value": "a\r\nInjected: 1\u0000"})
    e[1]["request"]["url"] = "not a url at all"
    e[2]["timings"]["wait"] = 1e300
    e[3]["time"] = -5
    e[4]["_connectionId"] = 1234567890123456789
    e[4]["response"]["status"] = 99.0
    _, out, _ = import_har(tmp_path, h)
    head0 = bytes(rows(out, "SELECT req_head FROM exchanges WHERE id = 1")[0]["req_head"])
    assert b"X-Evil: a  Injected: 1 \r\n" in head0  # one line: CR, LF and NUL become spaces


def test_import_of_a_20mb_har_peaks_under_four_times_its_size(tmp_path):
    """Entries are parsed one at a time from a mapped file (issue 10): the peak resident memory
    (VmHWM, from /usr/bin/time) stays under 4x the file, where jansson's tree of the whole
    document took 11x. Sanitizer builds carry shadow memory: there only the import counts."""
    if "asan" in peers.SHUNT_BIN:
        pytest.skip("a sanitizer build's memory says nothing of the release build's")
    if not os.access("/usr/bin/time", os.X_OK):
        raise peers.PeerError("/usr/bin/time is missing (apt-get install time)")
    src, out = tmp_path / "big.har", tmp_path / "big.db"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_har.py"), str(src), "--size", "20M"],
                   check=True, timeout=60)
    size = src.stat().st_size
    p = subprocess.run(["/usr/bin/time", "-f", "peak %M KB", peers.SHUNT_BIN, "import", src,
                        "--capture", out], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    peak = int(p.stderr.strip().split("\n")[-1].split()[1]) * 1024
    n = len(json.loads(src.read_bytes())["log"]["entries"])
    assert f"{n} entries from chrome" in p.stderr, p.stderr
    assert rows(out, "SELECT count(*) AS n FROM exchanges")[0]["n"] == n
    assert peak < 4 * size, f"peak {peak / size:.2f}x the file ({peak >> 20} MiB for {size >> 20} MiB)"


# ----------------------------------------------------------------------------- round trip


def comparable(h):
    return h["log"]["entries"]


def test_round_trip_export_import_export_keeps_the_entries(tmp_path):
    cap = sample(tmp_path / "s.db", events_dropped=3)
    a, b = tmp_path / "a.har", tmp_path / "b.har"
    export(cap, a)
    _, out, p = import_har(tmp_path, json.loads(a.read_text()), name="a-in.har")
    assert "6 entries from shunt, 3 connections" in p.stderr
    export(out, b)
    ha, hb = validate(a), validate(b)
    assert comparable(ha) == comparable(hb)
    assert hb["log"]["_shunt"]["incomplete"] is True  # the import keeps the drop count
    assert hb["log"]["_shunt"]["source"] == "har"
    # what a HAR can't carry stays unknown rather than invented
    c = rows(out, "SELECT id, closer, close_how, client_port FROM connections ORDER BY id")
    assert [(x["closer"], x["close_how"], x["client_port"]) for x in c] == [
        ("client", "FIN", 50001), ("server", "RST", 50002), (None, None, 50003)]


def test_round_trip_of_recorded_traffic(shunt, origin, tmp_path):
    cap, a, b = tmp_path / "c.db", tmp_path / "a.har", tmp_path / "b.har"
    origin.handler = reply_with(response(body=b"x" * 100), response(body=b"\xff\xfe"))
    px = shunt("--capture", cap)
    with px.client() as c:
        c.exchange(get(origin.host, "/1"))
        c.exchange(get(origin.host, "/2", method=b"PUT", extra=b"Content-Length: 3\r\n", body=b"abc"))
    with px.client() as c:
        c.exchange(get(origin.host, "/3"))
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    export(cap, a)
    _, out, _ = import_har(tmp_path, a.read_text(), name="a-in.har")
    export(out, b)
    assert comparable(validate(a)) == comparable(validate(b))
    assert len(comparable(validate(a))) == 3


if __name__ == "__main__":
    write_samples()
    print(f"wrote {len(PRODUCERS)} HAR files into {DATA}", file=sys.stderr)


def test_redact_covers_credentials_a_rule_set(shunt, origin, tmp_path):
    """A rule's header edit is recorded with its value ("set Authorization: Bearer ..."); the
    redacted export passes that text through the same redaction as the heads."""
    rules = tmp_path / "r.lua"
    rules.write_text('function on_request(s)\n'
                     '  s.request.headers:set("Authorization", "Bearer TOPSECRET1")\n'
                     '  s.request.headers:add("Cookie", "sid=TOPSECRET2")\n'
                     '  s.request.headers:set("X-Plain", "kept")\n'
                     'end\n')
    cap, out = tmp_path / "c.db", tmp_path / "c.har"
    px = shunt("--rules", rules, "--capture", cap)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).status == 200
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    export(cap, out, "--redact")
    text = out.read_text()
    assert "TOPSECRET" not in text
    whats = [c["what"] for e in json.loads(text)["log"]["entries"] for c in e["_shunt"]["changes"]]
    assert "set Authorization: Bearer <redacted>" in whats, whats
    assert "add Cookie: sid=<redacted>" in whats, whats
    assert "set X-Plain: kept" in whats, whats
    export(cap, tmp_path / "plain.har")  # without --redact the changes say what was set
    assert "TOPSECRET1" in (tmp_path / "plain.har").read_text()
