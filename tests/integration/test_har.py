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


# Fiddler Classic's exporter (BasicFormats.HTTPArchiveJSONExport, "HTTPArchive v1.2"), as
# tests/data/har/README.md describes it: what it writes and how.
FIDDLER_UA = "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"


def fiddler_time(ms):
    """ClientBeginRequest.ToString("o"): local time, 7 fraction digits, the offset."""
    s, frac = divmod(ms, 1000)
    return f"2024-05-01T12:00:{s:02d}.{frac:03d}0000+02:00"


def fiddler_entry(ms, path, port, dns=0, connect=0, send=0, wait=20, receive=1, status=200,
                  reason="OK", version="HTTP/1.1", req_extra=(), resp_extra=(),
                  body="<p>ok</p>", mime="text/html; charset=utf-8", host="intranet.test",
                  method="GET", length=True):
    """One Fiddler session as its exporter writes it: `connection` is the client port as text;
    timings are whole milliseconds, blocked -1, dns and connect 0 when none happened (connect
    is TCPConnectTime + HTTPSHandshakeTime of Fiddler's own connection to the server), ssl the
    handshake (0 for http); time their sum; no serverIPAddress (written only beside a comment),
    no pageref; headersSize counts the head, bodySize the body."""
    req_fields = [("Accept", "text/html, application/xhtml+xml, */*"),
                  ("Accept-Language", "en-US"), ("User-Agent", FIDDLER_UA),
                  ("Accept-Encoding", "gzip, deflate"), ("Host", host),
                  ("Connection", "Keep-Alive")] + list(req_extra)
    resp_fields = [("Content-Type", mime)] + \
        ([("Content-Length", str(len(body.encode())))] if length else []) + \
        [("Server", "Microsoft-IIS/10.0"), ("X-Powered-By", "ASP.NET"),
         ("Date", "Wed, 01 May 2024 10:00:00 GMT")] + list(resp_extra)

    def head_size(start, fields):
        return len(start) + 2 + sum(len(n) + 2 + len(v) + 2 for n, v in fields) + 2

    timings = {"blocked": -1, "dns": dns, "connect": connect, "ssl": 0, "send": send,
               "wait": wait, "receive": receive}
    return {
        "startedDateTime": fiddler_time(ms),
        "request": {
            "method": method, "url": f"http://{host}{path}", "httpVersion": "HTTP/1.1",
            "headersSize": head_size(f"{method} {path} HTTP/1.1", req_fields), "bodySize": 0,
            "headers": hdrs(*req_fields), "cookies": [], "queryString": [],
        },
        "response": {
            "status": status, "statusText": reason, "httpVersion": version,
            "headersSize": head_size(f"{version} {status} {reason}", resp_fields),
            "redirectURL": "", "bodySize": len(body.encode()), "headers": hdrs(*resp_fields),
            "cookies": [],
            "content": {"size": len(body.encode()), "compression": 0, "mimeType": mime,
                        "text": body},
        },
        "cache": {},
        "time": sum(max(v, 0) for k, v in timings.items() if k != "ssl"),
        "timings": timings,
        "connection": str(port),
    }


def fiddler_log(entries):
    return {"log": {"version": "1.2", "pages": [],
                    "comment": "exported @ 5/1/2024 12:00:09 PM",
                    "creator": {"name": "Fiddler", "version": "5.0.20211.51073",
                                "comment": "http://www.fiddler2.com"},
                    "entries": entries}}


def har_fiddler():
    """A keep-alive client (IE 11) loading an intranet page through Fiddler: 20 requests on
    2 client connections, ports 51200 and 51201. Each first request made Fiddler connect to
    the server (connect 12 and 9); every later one reused (connect 0), but for /api/status at
    5.2 s: the server had closed Fiddler's pooled connection meanwhile, so Fiddler connected
    again (connect 7) on the same client connection."""
    paths = ["/", "/styles/site.css", "/scripts/app.js", "/images/logo.png", "/scripts/menu.js",
             "/images/a.png", "/images/b.png", "/images/c.png", "/images/d.png",
             "/favicon.ico", "/api/news", "/api/user", "/api/items?page=1", "/api/items?page=2",
             "/images/e.png", "/images/f.png", "/api/status", "/api/items?page=3",
             "/api/items?page=4", "/help"]
    es = []
    for i, path in enumerate(paths):
        port = 51200 if i % 2 == 0 else 51201
        ms = i * 60 if i < 16 else 5000 + (i - 16) * 100
        first = i < 2
        es.append(fiddler_entry(ms, path, port, dns=3 if i == 0 else 0,
                                connect=(12 if i == 0 else 9) if first
                                else 7 if path == "/api/status" else 0,
                                wait=18 + i % 5, receive=1 + i % 3))
    return fiddler_log(es)


FIDDLER_TUNNEL_BODY = (
    "Encrypted HTTPS traffic flows through this CONNECT tunnel. HTTPS Decryption is enabled in"
    " Fiddler, so decrypted sessions running in this tunnel will be shown in the Web Sessions"
    " list.\n\nSecure Protocol: Tls12\n")


def fiddler_connect(ms, port, host="intranet.test", connect=12):
    """Fiddler's session of a CONNECT it decrypts ("Tunnel to host:443"): the client's CONNECT,
    answered by Fiddler itself with its fixed tunnel reply, `HTTP/1.1 200 Connection
    Established` with FiddlerGateway, StartTime and `Connection: close`, and a text body of its
    own about the tunnel (no Content-Length). The URL is written `http://host:443`."""
    e = fiddler_entry(ms, "", port, connect=connect, host=f"{host}:443", method="CONNECT",
                      reason="Connection Established", body=FIDDLER_TUNNEL_BODY,
                      mime="text/plain", length=False, wait=1, receive=0)
    fields = [("Host", f"{host}:443"), ("Content-Length", "0"),
              ("Connection", "Keep-Alive"), ("Pragma", "no-cache"), ("User-Agent", FIDDLER_UA)]
    line = f"CONNECT {host}:443 HTTP/1.1"
    e["request"].update(headers=hdrs(*fields), headersSize=len(line) + 4 + sum(
        len(n) + 2 + len(v) + 2 for n, v in fields))
    resp = [("FiddlerGateway", "Direct"), ("StartTime", "12:00:00.000"), ("Connection", "close")]
    e["response"].update(headers=hdrs(*resp), headersSize=len(
        "HTTP/1.1 200 Connection Established") + 4 + sum(len(n) + 4 + len(v) for n, v in resp))
    return e


def har_fiddler_https():
    """A keep-alive client (IE 11) loading an HTTPS page through Fiddler with HTTPS decryption
    on: two client connections (ports 51210, 51211), each a CONNECT that Fiddler answered with
    its fixed `Connection: close` tunnel reply, then the decrypted requests of the tunnel on
    the same client port (Fiddler lists them as sessions of their own, https URLs, `connection`
    the client port). Fiddler connected to the server for each CONNECT (connect 12, 9) and
    reused that connection for the requests (connect 0)."""
    es = [fiddler_connect(0, 51210), fiddler_connect(5, 51211, connect=9)]
    paths = ["/", "/styles/site.css", "/scripts/app.js", "/images/logo.png", "/api/news",
             "/api/user"]
    for i, path in enumerate(paths):
        port = 51210 if i % 2 == 0 else 51211
        e = fiddler_entry(60 + i * 60, path, port, wait=18 + i % 5, receive=1 + i % 3)
        e["request"]["url"] = "https://intranet.test" + path
        es.append(e)
    return fiddler_log(es)


def har_chrome_h2():
    """Current Chrome over HTTP/2 (and one HTTP/3 entry): `_connectionId` the socket, shared
    by every request multiplexed on it; `connection` the server port; pseudo-headers first,
    field names in lower case; httpVersion "h2" (and "http/2.0", which Chrome wrote when
    it had the headers text); a 404 and a 200 with no content-length (HTTP/2 frames the body,
    RFC 9113 8.1); connect -1 on the reused connection; `_`-fields."""
    u = "https://app.example.com"

    def h2(ms, path, time_ms, connect, cid="2871", status=200, version="h2", length=True,
           body="ok", resp_extra=(), port="443"):
        e = entry(ms, f"{u}{path}", time_ms, connect, status=status, version=version,
                  _connectionId=cid, connection=port, _initiator={"type": "parser"},
                  _priority="High", _resourceType="script", ip="203.0.113.20",
                  req_headers=hdrs((":authority", "app.example.com"), (":method", "GET"),
                                   (":path", path), (":scheme", "https"), ("accept", "*/*"),
                                   ("accept-encoding", "gzip, deflate, br, zstd"),
                                   ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) "
                                    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
                                    "Safari/537.36")),
                  resp_headers=hdrs(*([("content-type", "text/plain")] +
                                      ([("content-length", str(len(body)))] if length else []) +
                                      [("date", "Wed, 01 May 2024 10:00:00 GMT"),
                                       ("server", "nginx")] + list(resp_extra))),
                  content={"size": len(body), "mimeType": "text/plain", "text": body},
                  pageref="page_1")
        e["response"]["statusText"] = ""  # HTTP/2 has no reason phrase
        e["response"]["_transferSize"] = 40 + len(body)
        e["response"]["_error"] = None
        e["timings"]["_blocked_queueing"] = 0.4
        return e

    es = [
        h2(0, "/", 80, 25.1),
        # parallel requests multiplexed on the same connection while "/" is still busy
        h2(30, "/app.js", 60, -1, length=False, body="console.log(1)"),
        h2(31, "/app.css", 55, -1, version="http/2.0"),
        h2(32, "/missing.js", 20, -1, status=404, length=False, body="not found"),
        h2(33, "/api/a", 70, -1),
        h2(35, "/api/b", 65, -1, length=False),
        h2(200, "/api/c", 30, -1, resp_extra=[("cache-control", "no-store")]),
        # the server advertised HTTP/3 (alt-svc): a later request went over QUIC
        h2(400, "/api/d", 25, 12.5, cid="3004", version="h3"),
    ]
    return har("WebInspector", "537.36", es,
               pages=[{"startedDateTime": iso(0), "id": "page_1", "title": u + "/",
                       "pageTimings": {"onContentLoad": 150, "onLoad": 300}}])


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
    "chrome-h2.har": har_chrome_h2,
    "firefox.har": har_firefox,
    "fiddler.har": har_fiddler,
    "fiddler-https.har": har_fiddler_https,
    "mitmproxy.har": har_mitmproxy,
}


def sample_bytes(name, h):
    """The file as its producer writes it: Fiddler's is one line of JSON (JSON.JsonEncode)
    after a UTF-8 byte order mark and before CRLF (a .NET StreamWriter with Encoding.UTF8 and
    WriteLine); the others are indented (the layout does not matter to a reader)."""
    if name.startswith("fiddler"):
        return b"\xef\xbb\xbf" + json.dumps(h, separators=(",", ":")).encode() + b"\r\n"
    return (json.dumps(h, indent=1) + "\n").encode()


def write_samples():
    DATA.mkdir(parents=True, exist_ok=True)
    for name, make in PRODUCERS.items():
        (DATA / name).write_bytes(sample_bytes(name, make()))


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
        assert (DATA / name).read_bytes() == sample_bytes(name, make()), \
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
        "HTTP/1.1")  # Chrome's "http/1.1", spelt as on the wire
    (body,) = rows(out, "SELECT * FROM bodies WHERE exchange_id = 1")
    assert bytes(body["data"]) == b"\x89PNG" and body["direction"] == 1 and body["truncated"] == 0
    # HTTP/2 pseudo-headers are not HTTP/1 fields
    assert bytes(ex[4]["req_head"]) == b"GET /d.js HTTP/2\r\naccept: */*\r\n\r\n"
    assert ex[4]["http_version"] == "HTTP/2"
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


def test_import_chrome_h2_keeps_the_version_in_one_spelling_and_multiplexes(tmp_path):
    """tests/data/har/chrome-h2.har: every entry says its version ("h2", "http/2.0", "h3"),
    which the import writes as "HTTP/2" and "HTTP/3" in http_version and the rebuilt heads;
    the parallel requests share their socket (`_connectionId`)."""
    src = DATA / "chrome-h2.har"
    out = tmp_path / "h2.db"
    p = run("import", src, "--capture", out, check=0)
    assert "8 entries from chrome, 2 connections" in p.stderr, p.stderr
    ex = rows(out, "SELECT * FROM exchanges ORDER BY id")
    assert [e["http_version"] for e in ex] == ["HTTP/2"] * 7 + ["HTTP/3"]
    assert [e["conn_id"] for e in ex] == [1] * 7 + [2]
    assert [e["idx"] for e in ex] == [1, 2, 3, 4, 5, 6, 7, 1]
    assert bytes(ex[1]["req_head"]).startswith(b"GET /app.js HTTP/2\r\naccept: */*\r\n")
    assert bytes(ex[3]["resp_head"]) == (b"HTTP/2 404 \r\ncontent-type: text/plain\r\n"
                                         b"date: Wed, 01 May 2024 10:00:00 GMT\r\n"
                                         b"server: nginx\r\n\r\n")
    assert bytes(ex[7]["resp_head"]).startswith(b"HTTP/3 200 \r\n")
    assert all(e["flags"] == 0 for e in ex)


@pytest.mark.parametrize("written,name", [
    ("http/1.0", "HTTP/1.0"), ("HTTP/1.1", "HTTP/1.1"), ("http/1.1", "HTTP/1.1"),
    ("h2", "HTTP/2"), ("H2", "HTTP/2"), ("h2c", "HTTP/2"), ("HTTP/2", "HTTP/2"),
    ("HTTP/2.0", "HTTP/2"), ("http/2.0", "HTTP/2"), ("h3", "HTTP/3"), ("h3-29", "HTTP/3"),
    ("HTTP/3", "HTTP/3"), ("spdy/3.1", "spdy/3.1"), ("", None)])
def test_import_writes_one_spelling_per_http_version(tmp_path, written, name):
    e = entry(0, "https://example.com/", 10, 2, version=written, _connectionId="1")
    _, out, _ = import_har(tmp_path, har("WebInspector", "537.36", [e]))
    (x,) = rows(out, "SELECT http_version, req_head, resp_head FROM exchanges")
    assert x["http_version"] == name
    line = (name or "HTTP/1.1").encode()
    assert bytes(x["req_head"]).startswith(b"GET / " + line + b"\r\n")
    assert bytes(x["resp_head"]).startswith(line + b" 200 OK\r\n")


def test_import_reads_a_request_without_response_or_error_as_pending(tmp_path):
    """Chrome and mitmproxy write a request still in flight as status 0 with no `_error`:
    pending (flag 16), no status. With an `_error` it failed (flag 2)."""
    a = entry(0, "https://example.com/slow", 0, -1, status=0, _connectionId="1")
    b = entry(5, "https://example.com/down", 0, -1, status=0, _connectionId="2")
    for e, err in ((a, None), (b, "net::ERR_CONNECTION_REFUSED")):
        e["response"] = {"status": 0, "statusText": "", "httpVersion": "", "headers": [],
                         "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                         "redirectURL": "", "headersSize": -1, "bodySize": -1,
                         "_transferSize": 0, "_error": err}
    _, out, _ = import_har(tmp_path, har("WebInspector", "537.36", [a, b]))
    ex = rows(out, "SELECT status, flags, error, resp_head FROM exchanges ORDER BY id")
    assert [(x["status"], x["flags"], x["error"], x["resp_head"]) for x in ex] == [
        (None, 16, None, None), (None, 2, "net::ERR_CONNECTION_REFUSED", None)]


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


def test_import_fiddler_keep_alive_client_is_two_connections_and_no_low_reuse(tmp_path):
    """Fiddler's own file (tests/data/har/fiddler.har): `connection` is the client port, and
    a reused connection has connect 0. The port decides: 20 requests on 2 connections, and
    diagnose sees a healthy keep-alive client (it once saw 20 connections and low-reuse)."""
    src = DATA / "fiddler.har"
    assert src.read_bytes().startswith(b"\xef\xbb\xbf{")  # as .NET writes it
    out = tmp_path / "f.db"
    p = run("import", src, "--capture", out, check=0)
    assert "20 entries from fiddler, 2 connections" in p.stderr, p.stderr
    assert conn_pattern(out) == [1, 2] * 10
    conns = rows(out, "SELECT client_port, n_exchanges FROM connections ORDER BY id")
    assert [(c["client_port"], c["n_exchanges"]) for c in conns] == [(51200, 10), (51201, 10)]
    ex = rows(out, "SELECT path, idx, upstream_reused, started_us, http_version FROM exchanges"
                   " ORDER BY id")
    assert [e["idx"] for e in ex] == [i // 2 + 1 for i in range(20)]
    # Fiddler's connect is its own to the server: 0 reused it, > 0 connected (/api/status)
    assert [e["path"] for e in ex if e["upstream_reused"] == 0] == [
        "/", "/styles/site.css", "/api/status"]
    assert ex[0]["started_us"] == BASE_US  # 12:00:00.0000000+02:00
    assert ex[16]["started_us"] == BASE_US + 5_000_000
    assert {e["http_version"] for e in ex} == {"HTTP/1.1"}
    rc, outp, err = run_diagnose(out)
    ids = [f["id"] for f in json.loads(outp)["findings"]]
    assert "low-reuse" not in ids and "client-closes-early" not in ids, ids
    rc, outp, err = run_diagnose(src)  # the HAR itself, imported in memory
    ids = [f["id"] for f in json.loads(outp)["findings"]]
    assert "low-reuse" not in ids and "client-closes-early" not in ids, ids


def test_import_fiddler_connect_tunnel_is_one_connection_with_its_decrypted_requests(tmp_path):
    """Fiddler answers every CONNECT with `Connection: close` (its fixed tunnel reply); a 2xx to
    CONNECT makes the connection a tunnel (RFC 9110 9.3.6), so that field proves no end: the
    decrypted requests that follow on the same client port are the same connection
    (tests/data/har/fiddler-https.har). It once read as two connections per tunnel."""
    src = DATA / "fiddler-https.har"
    out = tmp_path / "f.db"
    p = run("import", src, "--capture", out, check=0)
    assert "8 entries from fiddler, 2 connections" in p.stderr, p.stderr
    assert conn_pattern(out) == [1, 2, 1, 2, 1, 2, 1, 2]
    conns = rows(out, "SELECT client_port, n_exchanges FROM connections ORDER BY id")
    assert [(c["client_port"], c["n_exchanges"]) for c in conns] == [(51210, 4), (51211, 4)]
    ex = rows(out, "SELECT method, idx, flags FROM exchanges ORDER BY id")
    assert [(e["method"], e["idx"]) for e in ex[:2]] == [("CONNECT", 1), ("CONNECT", 1)]
    assert all(e["flags"] & 8 for e in ex[:2]) and [e["idx"] for e in ex[2:]] == [2, 2, 3, 3, 4, 4]
    # a CONNECT refused (no tunnel) with Connection: close still ends the connection
    f = fiddler_connect(0, 51300)
    f["response"].update(status=502, statusText="Bad Gateway")
    later = fiddler_entry(100, "/", 51300, connect=10)
    _, out2, p = import_har(tmp_path, fiddler_log([f, later]), name="refused.har")
    assert "2 entries from fiddler, 2 connections" in p.stderr, p.stderr


def run_diagnose(path):
    p = run("diagnose", path, "--json")
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, p.stdout, p.stderr


def test_import_fiddler_splits_a_port_only_after_its_connection_provably_ended(tmp_path):
    """A client port seen again is a new connection only when the earlier one provably ended
    before: its last exchange closed it (Connection: close, HTTP/1.0 without keep-alive, a body
    delimited by the close) and the new entry starts after that exchange ended. Fiddler's
    connect > 0 proves nothing about the client's connection: it is Fiddler's own to the
    server."""
    f = fiddler_entry
    es = [
        f(0, "/a", 51300, connect=10, resp_extra=[("Connection", "close")]),
        f(0, "/b", 51301, connect=10),
        f(0, "/c", 51302, connect=10, version="HTTP/1.0"),
        f(0, "/d", 51303, connect=10, length=False),
        f(0, "/e", 51304, connect=10, resp_extra=[("Connection", "close")]),
        f(10, "/e2", 51304),                  # before /e ended: still its connection
        f(3000, "/a2", 51300, connect=10),    # after a close: a new connection, port reused
        f(3000, "/b2", 51301, connect=9),     # Fiddler connected anew; the client did not
        f(3000, "/c2", 51302),                # HTTP/1.0 without keep-alive closed it
        f(3000, "/d2", 51303),                # a body delimited by the close closed it
    ]
    _, out, p = import_har(tmp_path, fiddler_log(es))
    assert "10 entries from fiddler, 8 connections" in p.stderr, p.stderr
    assert conn_pattern(out) == [1, 2, 3, 4, 5, 5, 6, 2, 7, 8]
    conns = rows(out, "SELECT id, client_port FROM connections ORDER BY id")
    assert [c["client_port"] for c in conns] == [51300, 51301, 51302, 51303, 51304, 51300,
                                                 51302, 51303]


def test_import_reads_a_har_that_starts_with_a_byte_order_mark(tmp_path):
    """Windows tools write a UTF-8 BOM first; it is no part of the JSON (RFC 8259 8.1)."""
    plain = json.dumps(har_fiddler()).encode()
    _, out, _ = import_har(tmp_path, b"\xef\xbb\xbf" + plain, name="bom.har")
    _, ref, _ = import_har(tmp_path, plain, name="plain.har")
    q = "SELECT conn_id, url, status FROM exchanges ORDER BY id"
    assert rows(out, q) == rows(ref, q) and len(rows(out, q)) == 20
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
    # the capture's facts are kept (a proxy's capture), the command line is the import's
    assert hb["log"]["_shunt"]["source"] == "proxy"
    assert hb["log"]["_shunt"]["command_line"].startswith("shunt import ")
    # what a HAR can't carry stays unknown rather than invented
    c = rows(out, "SELECT id, closer, close_how, client_port FROM connections ORDER BY id")
    assert [(x["closer"], x["close_how"], x["client_port"]) for x in c] == [
        ("client", "FIN", 50001), ("server", "RST", 50002), (None, None, 50003)]


def awkward(path):
    """A capture with the rows a HAR bends: bytes from the client that are not head + body
    (an absolute-form request sent on in origin-form, a chunked body), a pending exchange,
    self-answers (a 403 of a rule, the 200 of a CONNECT, a 400 for a request refused before
    its URL was known), and an exchange whose connection row the recorder dropped; rows no
    exchange references (the CONNECT's upstream, the upstream a 502 came after, a connection
    that carried no request, an upstream row of such a connection), and a connection still open
    with its pending exchange when the capture stopped."""
    with Capture(path, stopped_us=T0 + 20_000_000) as cap:
        c1 = cap.connection(client_port=50001, opened_us=T0 + 100, closed_us=T0 + 900_000,
                            closer="client", close_how="FIN", bytes_in=400, bytes_out=300)
        u1 = cap.upstream(c1, local_port=40001)
        cap.db.execute("UPDATE upstreams SET closed_us = ?, closer = 'server', close_how = 'FIN',"
                       " bytes_in = 130, bytes_out = 220 WHERE id = ?", (T0 + 800_000, u1))
        e = cap.exchange(
            c1, upstream=u1, method="POST", path="/form", started_us=T0 + 1001,
            duration_us=3_333, req_body_size=5, req_bytes=97 + 15,
            req_head=head(b"POST http://origin.test/form HTTP/1.1", b"Host: origin.test",
                          b"Proxy-Connection: keep-alive", b"Transfer-Encoding: chunked"),
            req_head_sent=head(b"POST /form HTTP/1.1", b"Host: origin.test",
                               b"Transfer-Encoding: chunked"),
            resp_head=head(b"HTTP/1.1 200 OK", b"Content-Length: 2"), resp_body_size=2,
            flags=32)
        cap.body(e, 0, b"hello")
        cap.body(e, 1, b"ok")
        cap.change(e, "request line to origin-form")
        cap.change(e, "remove Proxy-Connection")
        # pending: the head was seen, nothing since (docs/capture.md, flag 16)
        cap.exchange(c1, upstream=u1, reused=1, path="/slow", started_us=T0 + 500_000,
                     status=None, duration_us=0, timings=(-1, -1, -1, 0, 0, 0), flags=16)
        c2 = cap.connection(client_port=50002, opened_us=T0 + 1_000_000, tunnel=1,
                            closed_us=T0 + 9_000_000, closer="client", close_how="FIN",
                            bytes_in=5000, bytes_out=7000)
        e = cap.exchange(c2, method="GET", path="/blocked", status=403,
                         started_us=T0 + 1_000_500, duration_us=40, flags=64,
                         resp_head_sent=head(b"HTTP/1.1 403 Forbidden", b"Content-Length: 7"),
                         resp_bytes=45, resp_body_size=7)
        cap.body(e, 1, b"blocked")
        u2 = cap.upstream(c2, local_port=40002, host="secure.test", port=443)
        cap.db.execute("UPDATE upstreams SET closed_us = ?, closer = 'server', close_how = 'FIN',"
                       " bytes_in = 7000, bytes_out = 5000 WHERE id = ?", (T0 + 8_100_000, u2))
        # shunt answered the CONNECT itself (its 200): no exchange references the tunnel's
        # upstream (decision 3)
        cap.exchange(c2, method="CONNECT", host="secure.test", port=443,
                     path="secure.test:443", url="secure.test:443", status=200,
                     started_us=T0 + 1_100_000, duration_us=7_000_000, flags=8 | 64,
                     req_head=head(b"CONNECT secure.test:443 HTTP/1.1", b"Host: secure.test:443"),
                     resp_head_sent=head(b"HTTP/1.1 200 Connection established"))
        c3 = cap.connection(client_port=50003, opened_us=T0 + 2_000_000, closer="proxy",
                            close_how="error", closed_us=T0 + 2_000_300)
        e = cap.exchange(c3, status=400, started_us=T0 + 2_000_100, duration_us=0,
                         error="bad request: invalid character in field name at byte 41",
                         flags=2 | 64, req_bytes=60,
                         req_head=head(b"GET http://h.test/ HTTP/1.1", b"Host: h.test",
                                       b"Bad Name: v"),
                         resp_head_sent=head(b"HTTP/1.1 400 Bad Request", b"Connection: close",
                                             b"Content-Length: 0"))
        cap.db.execute("UPDATE exchanges SET method = NULL, url = NULL, host = NULL, path = NULL,"
                       " http_version = NULL WHERE id = ?", (e,))
        # the recorder dropped connection 9's row (events dropped): its exchange stays
        cap.exchange(9, method="GET", path="/orphan", started_us=T0 + 3_000_000)
        # a 502 after the upstream connected and closed without responding
        c4 = cap.connection(client_port=50004, opened_us=T0 + 4_000_000, closer="client",
                            close_how="FIN", closed_us=T0 + 6_600_000, bytes_in=60,
                            bytes_out=120)
        u = cap.upstream(c4, local_port=40004, opened_us=T0 + 4_000_200)
        cap.db.execute("UPDATE upstreams SET closed_us = ?, closer = 'server', close_how = 'FIN',"
                       " bytes_in = 0, bytes_out = 60 WHERE id = ?", (T0 + 6_500_000, u))
        cap.exchange(c4, path="/gone", status=502, started_us=T0 + 4_000_100,
                     duration_us=2_500_000, flags=2 | 64, req_bytes=60, resp_bytes=120,
                     error="upstream closed the connection without responding",
                     resp_head_sent=head(b"HTTP/1.1 502 Bad Gateway", b"Content-Length: 0"))
        # a client that connected and sent nothing; an upstream row on such a connection
        # (only a damaged capture has one) comes back too
        c5 = cap.connection(client_port=50005, opened_us=T0 + 5_000_000, closer="client",
                            close_how="FIN", closed_us=T0 + 5_000_100)
        cap.upstream(c5, local_port=40005, opened_us=T0 + 5_000_050)
        # still open when the capture stopped, its request pending, its upstream open
        c6 = cap.connection(client_port=50006, opened_us=T0 + 7_000_000, bytes_in=40)
        u = cap.upstream(c6, local_port=40006, opened_us=T0 + 7_000_100)
        cap.exchange(c6, upstream=u, path="/hung", started_us=T0 + 7_000_050, status=None,
                     duration_us=0, timings=(-1, -1, -1, 0, 0, 0), flags=16)
        # a TLS client whose handshake failed: no request either
        cap.connection(client_port=50007, opened_us=T0 + 8_000_000, tls=1, closer="proxy",
                       close_how="error", closed_us=T0 + 8_000_400, bytes_in=517)
    return path


def table(path, sql):
    return rows(path, sql)


def test_round_trip_keeps_every_row_and_diff_finds_no_difference(tmp_path):
    """export -> import gives the capture's rows back, byte counts, pending and self-answered
    exchanges, a CONNECT's target and a missing connection row included; and `shunt diff` of a
    capture against its own export finds no difference (the integration suite checks that of
    every capture it makes: conftest.py)."""
    cap = awkward(tmp_path / "a.db")
    har_path = tmp_path / "a.har"
    export(cap, har_path)
    h = validate(har_path)
    es = {e["_shunt"]["id"]: e for e in h["log"]["entries"]}
    # what the client received, and what it did not
    pending = es[2]["response"]
    assert (pending["status"], pending["_error"]) == (0, None)
    assert pending["comment"].startswith("pending")
    assert es[3]["response"]["status"] == 403
    assert es[3]["response"]["headers"] == [{"name": "Content-Length", "value": "7"}]
    assert es[3]["response"]["content"]["text"] == "blocked"
    assert es[4]["request"]["url"] == "secure.test:443"
    assert es[4]["response"]["statusText"] == "Connection established"
    assert es[5]["request"]["url"] == "http://h.test/" and es[5]["request"]["method"] == "GET"
    assert es[5]["response"]["status"] == 400
    assert es[1]["_shunt"]["exchange"]["req_bytes"] == 112
    # the rows no exchange references: on the first exchange of their connection, and for a
    # connection without exchanges in log._shunt
    assert [u["local_port"] for u in es[3]["_shunt"]["other_upstreams"]] == [40002]
    assert [u["local_port"] for u in es[7]["_shunt"]["other_upstreams"]] == [40004]
    assert [c["id"] for c in h["log"]["_shunt"]["connections"]] == [5, 7]
    assert [u["local_port"] for u in h["log"]["_shunt"]["upstreams"]] == [40005]
    assert (h["log"]["_shunt"]["source"], h["log"]["_shunt"]["stopped_us"]) == (
        "proxy", T0 + 20_000_000)
    _, out, p = import_har(tmp_path, har_path.read_text(), name="b.har")
    # the connection rows it wrote (connection 9 has none: the recorder dropped it)
    assert "8 entries from shunt, 7 connections" in p.stderr, p.stderr
    # every row of every table, whole: not only what the entries reference
    for sql in ("SELECT * FROM exchanges ORDER BY id", "SELECT * FROM connections ORDER BY id",
                "SELECT * FROM upstreams ORDER BY id",
                "SELECT * FROM bodies ORDER BY exchange_id, direction",
                "SELECT exchange_id, in_request, what, by FROM changes ORDER BY id",
                "SELECT source, source_detail, started_us, stopped_us, body_limit,"
                " events_dropped FROM capture"):
        assert table(out, sql) == table(cap, sql), sql
    assert len(table(out, "SELECT id FROM upstreams")) == 5
    # so the views read the same: connection 6 open, its request waited as long
    for view in ("connections", "sessions"):
        a, b = (json.loads(run(view, "--json", f, check=0).stdout) for f in (cap, out))
        del a["capture"], b["capture"]
        assert a == b, view
    conns = {c["id"]: c for c in json.loads(run("connections", "--json", out).stdout)
             ["connections"]}
    assert conns[6]["open"] and conns[2]["upstream_ports"] == [40002]
    for a, b in ((cap, har_path), (cap, out), (har_path, cap)):
        d = run("diff", a, b)
        assert d.returncode == 0 and d.stdout.endswith("no difference.\n"), d.stdout


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
