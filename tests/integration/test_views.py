"""test_views.py - `shunt sessions`, `shunt show`, `shunt connections`: exact output on known
capture rows (captures.py writes them with sqlite3), --json, paging, filters, the incomplete
warning, every bad input (one line, exit 2), a capture being written while it is read, a pager
on a terminal, and real traffic recorded by `shunt proxy --capture` then viewed."""
import fcntl
import json
import os
import pty
import signal
import sqlite3
import struct
import subprocess
import termios
import threading
import time

import pytest

import captures
import peers
from captures import T0, Capture, head
from peers import get

ENV = dict(os.environ, TZ="UTC", COLUMNS="120")
ENV.pop("PAGER", None)


def view(*args, env=None, cwd=None):
    """Runs `shunt ARGS` (a view) and returns (status, stdout, stderr) as text."""
    p = subprocess.run([peers.SHUNT_BIN, *[str(a) for a in args]], capture_output=True,
                       env=env or ENV, cwd=cwd, timeout=peers.WAIT * 3)
    assert not peers.SANITIZER_RE.search(p.stderr.decode(errors="replace")), p.stderr.decode()
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ok(*args, **kw):
    rc, out, err = view(*args, **kw)
    assert (rc, err) == (0, ""), (rc, err)
    return out


def sample(path, **kw):
    """captures.sample() with the flags a proxy records since issue 11: exchange 1 (only the
    routine Proxy-Connection removal) has flag r (32), not C; exchange 3 (a rule changed
    its response head) has C (1) beside T (4), since C comes from the flag alone."""
    captures.sample(path, **kw)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE exchanges SET flags = 32 WHERE id = 1")
        db.execute("UPDATE exchanges SET flags = 5 WHERE id = 3")
    return path


@pytest.fixture
def cap(tmp_path):
    return sample(tmp_path / "c.db")


# ----------------------------------------------------------------------------- sessions

# Issue 11 changed: exchange 1 is r (routine rewrites only), not C; a CONNECT's host is
# its target, host:port.
SESSIONS = """\
id  conn  idx  cport  method   host             path             status  bytes       ms  flags
 1     1    1  50001  GET      origin.test      /index.html         200     94     12.3  r
 2     1    2  50001  GET      origin.test      /logo.png           200    120      0.8  -
 3     2    1  50002  POST     origin.test      /api/items          201     57      2.0  CT
 4     2    2  50002  GET      other.test       /down               502     47  10000.0  E
 5     3    1  50003  CONNECT  secure.test:443  secure.test:443     200     39  60000.0  U
 6     3    2  50003  GET      origin.test      /slow               200     38   2500.0  -
"""


def test_sessions_one_exchange_a_row_in_aligned_columns(cap):
    assert ok("sessions", cap) == SESSIONS


def cells(text):
    return [l.split() for l in text.splitlines()]


def test_sessions_limit_and_offset_page_in_id_order(cap):
    # Column widths follow the rows shown, so pages compare cell by cell.
    rows = cells(SESSIONS)
    assert cells(ok("sessions", cap, "--limit", "2")) == rows[:3]
    assert cells(ok("sessions", cap, "--offset", "2", "--limit", "3")) == [rows[0]] + rows[3:6]
    assert cells(ok("sessions", cap, "--offset=5")) == [rows[0], rows[6]]
    assert cells(ok("sessions", cap, "--offset", "6")) == [rows[0]]


def ids(out):
    return [int(l.split()[0]) for l in out.splitlines()[1:]]


def test_sessions_filters_by_host_status_and_connection(cap):
    assert ids(ok("sessions", cap, "--host", "origin.test")) == [1, 2, 3, 6]
    assert ids(ok("sessions", cap, "--host", "ORIGIN.Test")) == [1, 2, 3, 6]  # case-insensitive
    assert ids(ok("sessions", cap, "--status", "200")) == [1, 2, 5, 6]
    assert ids(ok("sessions", cap, "--conn", "2")) == [3, 4]
    assert ids(ok("sessions", cap, "--conn=3", "--status=200", "--host=origin.test")) == [6]
    assert ids(ok("sessions", cap, "--host", "origin.test", "--offset", "1", "--limit", "2")) == [2, 3]
    assert ids(ok("sessions", cap, "--host", "nowhere.test")) == []


def test_sessions_json_has_every_value_in_full(cap):
    doc = json.loads(ok("sessions", cap, "--json", "--conn", "2"))
    assert doc["capture"] == {
        "file": str(cap), "shunt_version": "0.1.0", "command_line": "shunt proxy --capture test.db",
        "source": "proxy", "source_detail": None, "started_us": T0, "stopped_us": None,
        "body_limit": 1 << 20, "events_dropped": 0, "incomplete": False,
    }
    assert doc["exchanges"] == [
        {"id": 3, "conn": 2, "idx": 1, "client_port": 50002, "method": "POST",
         "url": "http://origin.test/api/items", "host": "origin.test", "port": 80,
         "path": "/api/items", "status": 201, "bytes": 57, "req_bytes": 101 + 3012,
         "started_us": T0 + 3_000_100, "duration_us": 2000, "pending": False,
         "waiting_us": None, "answered_by_shunt": False, "flags": "CT", "error": None},
        {"id": 4, "conn": 2, "idx": 2, "client_port": 50002, "method": "GET",
         "url": "http://other.test/down", "host": "other.test", "port": 80, "path": "/down",
         "status": 502, "bytes": 47, "req_bytes": 40, "started_us": T0 + 3_050_000,
         "duration_us": 10_000_000, "pending": False, "waiting_us": None,
         "answered_by_shunt": False, "flags": "E", "error": "upstream refused"},
    ]
    assert json.loads(ok("sessions", cap, "--json", "--offset", "6"))["exchanges"] == []


def test_sessions_cuts_long_paths_to_the_terminal_and_json_keeps_them(tmp_path):
    long = "/search?q=" + "x" * 300
    with Capture(tmp_path / "l.db") as c:
        conn = c.connection(client_port=1234)
        c.exchange(conn, path=long, host="h.test")
        c.exchange(conn, path="/esc\x1b[2J", host="h.test")
    out = ok("sessions", tmp_path / "l.db", env=dict(ENV, COLUMNS="100"))
    lines = out.splitlines()
    assert all(len(l) <= 100 for l in lines), lines
    assert lines[1].split()[6].startswith("/search?q=xxx") and lines[1].split()[6].endswith("...")
    assert "/esc\\x1b[2J" in lines[2]  # a control byte never reaches the terminal
    assert json.loads(ok("sessions", tmp_path / "l.db", "--json"))["exchanges"][0]["path"] == long


def test_sessions_of_an_empty_capture_is_the_header(tmp_path):
    Capture(tmp_path / "e.db").close()
    assert ok("sessions", tmp_path / "e.db") == (
        "id  conn  idx  cport  method  host  path  status  bytes     ms  flags\n")
    assert json.loads(ok("sessions", tmp_path / "e.db", "--json"))["exchanges"] == []


# ----------------------------------------------------------------------------- show

# Issue 11 changed: flag r, and the routine rewrite listed apart from the changes.
SHOW_1 = """\
exchange 1: GET http://origin.test/index.html -> 200 OK  [r]
connection 1, exchange 1 on it; client port 50001 -> upstream 1 from local port 40001 (new)
started 2026-11-26 12:00:00.002, took 12.35 ms; 108 bytes from the client, 94 bytes to it
timings (ms): blocked 0.01, dns -, connect 0.52, send 0.03, wait 11.00, receive 0.79

request head (as received; "- " removed, "+ " added when sent upstream):
- GET http://origin.test/index.html HTTP/1.1
+ GET /index.html HTTP/1.1
  Host: origin.test
- Proxy-Connection: keep-alive
  Accept: */*

routine forward-proxy rewrites:
  request   remove Proxy-Connection

response head (as received, sent to the client unchanged):
  HTTP/1.1 200 OK
  Content-Type: text/html
  Content-Length: 30

request body: none
response body: 30 bytes, text:
  <html>
  hello \u00e9t\u00e9
  </html>
"""


def test_show_summary_timings_head_diff_changes_and_text_body(cap):
    assert ok("show", cap, "1") == SHOW_1


def test_show_response_head_changed_by_a_rule_and_a_truncated_body(cap):
    out = ok("show", cap, "3")
    assert out.startswith("exchange 3: POST http://origin.test/api/items -> 201 Created  [CT]\n")
    assert (
        "request head (as received, sent upstream unchanged):\n"
        "  POST /api/items HTTP/1.1\n"
        "  Host: origin.test\n"
        "  Content-Type: application/json\n"
        "  Content-Length: 3012\n"
        "\n"
        "changes:\n"
        "  response  remove Server  (by strip-server)\n"
        "  response  add X-Debug: shunt  (by strip-server)\n"
        "\n"
        "response head (as received; \"- \" removed, \"+ \" added when sent to the client):\n"
        "  HTTP/1.1 201 Created\n"
        "- Server: test\n"
        "  Content-Length: 0\n"
        "+ X-Debug: shunt\n"
        "\n"
        "request body: 3012 bytes, text:\n"
        '  {"name": "' + "x" * 2038 + "\n"
        "  ... 964 more bytes (truncated: the capture kept the first 2500)\n"
        "response body: none\n"
    ) in out


def test_show_binary_body_as_a_hex_dump(cap):
    out = ok("show", cap, "2")
    assert "upstream 1 from local port 40001 (reused)" in out
    assert out.endswith(
        "response body: 56 bytes, binary:\n"
        "  00000000  89 50 4e 47 0d 0a 1a 0a  00 00 00 0d 49 48 44 52  |.PNG........IHDR|\n"
        "  00000010  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|\n"
        "  00000020  10 11 12 13 14 15 16 17  18 19 1a 1b 1c 1d 1e 1f  |................|\n"
        "  00000030  20 21 22 23 24 25 26 27                           | !\"#$%&'|\n"
    )


def test_show_error_interim_heads_and_long_binary_preview(cap, tmp_path):
    out = ok("show", cap, "4")
    assert "timings (ms): blocked -, dns 0.20, connect -, send 0.00, wait 0.00, receive 0.00\n" \
           "error: upstream refused\n" in out
    assert out.startswith("exchange 4: GET http://other.test/down -> 502 Bad Gateway  [E]\n")
    assert "\ninterim responses (1xx, as received):\n  HTTP/1.1 100 Continue\n\n" \
           "response head (as received, sent to the client unchanged):\n  HTTP/1.1 200 OK\n" \
        in ok("show", cap, "6")
    with Capture(tmp_path / "b.db") as c:
        conn = c.connection()
        e = c.exchange(conn, status=None, resp_head=None, resp_body_size=5000)
        c.body(e, 1, bytes(range(256)) * 10 + b"\0" * 100)
    out = ok("show", tmp_path / "b.db", "1")
    # issue 11: nobody answered it, so the view no longer says "answered by shunt"
    assert out.startswith("exchange 1: GET http://origin.test/ -> no response  [-]\n"
                          "connection 1, exchange 1 on it; client port 50000, no upstream\n")
    assert "\nresponse head: none (the client received no response)\n" in out
    dump = out.split("response body: 5000 bytes, binary:\n")[1].splitlines()
    assert len(dump) == 2048 // 16 + 1
    assert dump[-2] == "  000007f0  f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc fd fe ff  |................|"
    assert dump[-1] == "  ... 2952 more bytes"


def test_show_json_has_heads_changes_and_whole_bodies(cap):
    doc = json.loads(ok("show", cap, "3", "--json"))
    x = doc["exchange"]
    assert doc["capture"]["incomplete"] is False
    assert (x["id"], x["conn"], x["idx"], x["status"], x["flags"], x["flags_bits"]) == (
        3, 2, 1, 201, "CT", 5)
    assert (x["pending"], x["waiting_us"], x["answered_by_shunt"], x["shunt_answer"],
            x["sent_upstream"], x["port"]) == (False, None, False, None, True, 80)
    assert x["resp_head"] == "HTTP/1.1 201 Created\r\nServer: test\r\nContent-Length: 0\r\n\r\n"
    assert x["resp_head_sent"].endswith("X-Debug: shunt\r\n\r\n") and x["req_head_sent"] is None
    assert x["changes"] == [
        {"in": "response", "what": "remove Server", "by": "strip-server", "routine": False},
        {"in": "response", "what": "add X-Debug: shunt", "by": "strip-server", "routine": False}]
    assert x["req_body"] == {"size": 3012, "kept": 2500, "truncated": True,
                             "data": ('{"name": "' + "x" * 3000)[:2500]}
    assert x["resp_body"] is None
    assert (x["t_blocked"], x["t_wait"], x["upstream_local_port"], x["upstream_reused"]) == (
        -1, 1000, 40002, False)
    x2 = json.loads(ok("show", cap, "2", "--json"))["exchange"]
    import base64
    assert base64.b64decode(x2["resp_body"]["data_base64"]) == captures.PNG
    assert x2["upstream_reused"] is True


def test_a_pending_exchange_waited_until_the_capture_stopped(tmp_path):
    """issue 11: flag P (16) with no status: 'wait', the time waited with '+', and in show
    how long it had waited when the capture stopped."""
    path = tmp_path / "p.db"
    with Capture(path, stopped_us=T0 + 10_000_000) as c:
        conn = c.connection(client_port=50009)
        c.exchange(conn, path="/hang", status=None, started_us=T0 + 2_500_000, duration_us=0,
                   flags=16 | 32, req_head_sent=head(b"GET /hang HTTP/1.1", b"Host: origin.test"),
                   req_head=head(b"GET http://origin.test/hang HTTP/1.1", b"Host: origin.test"),
                   upstream=c.upstream(conn, local_port=40009))
    assert ok("sessions", path).splitlines()[1].split() == [
        "1", "1", "1", "50009", "GET", "origin.test", "/hang", "wait", "0", "7500.0+", "rP"]
    out = ok("show", path, "1")
    assert out.startswith("exchange 1: GET http://origin.test/hang -> no response yet  [rP]\n")
    assert "\nstarted 2026-11-26 12:00:02.500, not ended yet; " in out
    assert "\nresponse: none yet; waiting since 2026-11-26 12:00:02.500 (7.50s when the capture " \
           "stopped)\n" in out
    x = json.loads(ok("sessions", path, "--json"))["exchanges"][0]
    assert (x["pending"], x["waiting_us"], x["duration_us"], x["status"]) == (
        True, 7_500_000, None, None)
    assert json.loads(ok("show", path, "1", "--json"))["exchange"]["waiting_us"] == 7_500_000
    assert ids(ok("sessions", path, "~q")) == [1]


I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


@pytest.mark.parametrize("start,stopped", [
    (I64_MIN, T0 + 10_000_000), (-1, T0), (I64_MIN, I64_MAX), (-5, I64_MAX), (I64_MIN, -1),
    (I64_MAX, T0)])
def test_a_pending_exchange_with_a_start_out_of_range_waited_nothing(tmp_path, start, stopped):
    """A capture is untrusted: a pending exchange's start before 1970 (or after the end) is no
    wait, where the view computed end - start in int64_t (an overflow, which UBSan reports:
    run with SHUNT_BIN=build-asan/shunt) and printed a negative wait. A negative stopped_us
    reads as "still recorded": now is the end, and the wait, when any, is not negative."""
    path = tmp_path / "p.db"
    with Capture(path, stopped_us=stopped) as c:
        conn = c.connection()
        c.exchange(conn, path="/hang", status=None, started_us=start, duration_us=0,
                   flags=16)
    x = json.loads(ok("sessions", path, "--json"))["exchanges"][0]
    y = json.loads(ok("show", path, "1", "--json"))["exchange"]
    if stopped >= 0:  # else each command reads its own clock
        assert x["waiting_us"] == y["waiting_us"] == 0
    assert x["waiting_us"] >= 0 and y["waiting_us"] >= 0
    assert "-" not in ok("sessions", path).splitlines()[1].split()[9]
    assert "waiting since " in ok("show", path, "1")


def test_show_of_shunts_own_answer_shows_what_the_client_received(tmp_path):
    """issue 11: flag S (64), resp_head NULL, resp_head_sent what shunt sent, the body as
    sent: the response head is the one the client received, and the request was not sent."""
    path = tmp_path / "s.db"
    sent = head(b"HTTP/1.1 502 Bad Gateway", b"Content-Length: 49")
    body = b"shunt: cannot connect to origin.test:80: refused\n"
    with Capture(path) as c:
        conn = c.connection()
        e = c.exchange(conn, status=502, resp_head=None, resp_head_sent=sent, flags=2 | 64,
                       error="cannot connect to origin.test:80: connection refused "
                             "(ECONNREFUSED)", resp_body_size=len(body))
        c.db.execute("UPDATE exchanges SET resp_head = NULL")  # no server sent one
        c.body(e, 1, body)
    out = ok("show", path, "1")
    assert out.startswith("exchange 1: GET http://origin.test/ -> 502 Bad Gateway  [ES]\n"
                          "connection 1, exchange 1 on it; client port 50000, answered by shunt "
                          "(no upstream)\n")
    assert ("\nanswered by shunt: the upstream was unreachable: cannot connect to "
            "origin.test:80: connection refused (ECONNREFUSED); the request was not sent "
            "upstream\n\nrequest head (as received; not sent upstream: the upstream was "
            "unreachable):\n  GET / HTTP/1.1\n  Host: origin.test\n\n"
            "response head (sent by shunt; no server sent one):\n  HTTP/1.1 502 Bad Gateway\n"
            "  Content-Length: 49\n\nrequest body: none\nresponse body: 49 bytes, text:\n"
            "  shunt: cannot connect to origin.test:80: refused\n") in out, out
    assert "\nerror:" not in out
    x = json.loads(ok("show", path, "1", "--json"))["exchange"]
    assert (x["answered_by_shunt"], x["sent_upstream"], x["shunt_answer"]["why"]) == (
        True, False, "unreachable")
    assert ok("sessions", path).splitlines()[1].split()[-1] == "ES"


def test_show_of_an_older_capture_never_says_a_rules_answer_went_upstream(tmp_path):
    """Captures made before issue 11 have no flag S, and named the connection's upstream for a
    rule's answer: the respond change says what happened."""
    path = tmp_path / "o.db"
    with Capture(path) as c:
        conn = c.connection()
        u = c.upstream(conn, local_port=40001)
        c.exchange(conn, upstream=u, path="/a")
        e = c.exchange(conn, upstream=u, path="/canned", status=200, resp_head=None, flags=1)
        c.db.execute("UPDATE exchanges SET resp_head = NULL WHERE id = ?", (e,))
        c.change(e, "respond 200 without the server", by="--respond #1")
    out = ok("show", path, "2")
    assert "client port 50000, answered by shunt (no upstream)\n" in out
    assert "\nanswered by shunt: the rule \"--respond #1\" (respond 200 without the server); " \
           "the request was not sent upstream\n" in out
    assert "unchanged" not in out and "not sent upstream: a rule answered it" in out
    assert "\nresponse head: not in the capture (shunt sent 200)\n" in out


SENT_HEAD = head(b"GET / HTTP/1.1", b"Host: origin.test")


@pytest.mark.parametrize("method,status,flags,error,up,sent,rule,went", [
    # review-inputs/nulls.db's exchange 2: a head the parser refused, yet an upstream and a
    # head as sent
    ("", 400, 2 | 64, "bad request: ", True, True, None, True),
    ("", 400, 2 | 64, "bad request: ", False, True, None, True),
    ("GET", 502, 2 | 64, "cannot connect to origin.test:80: refused", True, False, None, True),
    ("GET", 403, 2 | 64, "not forwarded to origin.test:80", False, True, None, True),
    ("GET", 200, 1 | 64, None, True, True, "--respond #1", True),
    # a CONNECT's upstream is its tunnel: the CONNECT itself never goes upstream, and the
    # capture cannot tell more
    ("CONNECT", 200, 8 | 64, None, True, False, None, None),
], ids=["parser-up-sent", "parser-sent", "unreachable-up", "refused-sent", "rule-sent",
        "connect-up"])
def test_show_never_says_not_sent_when_the_capture_says_it_went(tmp_path, method, status,
                                                                flags, error, up, sent, rule,
                                                                went):
    """A hostile capture may name an upstream or hold a head as sent for an exchange whose
    error (or rule, or method) says shunt answered before sending: the capture's record wins,
    and show does not print "-> upstream 1" beside "not sent upstream"."""
    path = tmp_path / "h.db"
    with Capture(path) as c:
        conn = c.connection()
        u = c.upstream(conn, local_port=40001) if up else None
        e = c.exchange(conn, upstream=u, method=method, status=status, flags=flags,
                       error=error, req_head_sent=SENT_HEAD if sent else None)
        if rule:
            c.change(e, f"respond {status} without the server", by=rule)
    out = ok("show", path, "1")
    assert "not sent upstream" not in out, out
    x = json.loads(ok("show", path, "1", "--json"))["exchange"]
    assert (x["answered_by_shunt"], x["sent_upstream"]) == (True, went)


def test_sessions_filters_changed_and_one_port_of_a_host(tmp_path):
    path = tmp_path / "h.db"
    with Capture(path) as c:
        conn = c.connection()
        c.exchange(conn, host="127.0.0.1", port=8080, path="/a", flags=32)
        c.exchange(conn, host="127.0.0.1", port=8081, path="/b", flags=1)
        c.exchange(conn, host="127.0.0.1", path="/c")
    assert [l.split()[5] for l in ok("sessions", path).splitlines()[1:]] == [
        "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1"]
    assert ids(ok("sessions", path, "--host", "127.0.0.1:8081")) == [2]
    assert ids(ok("sessions", path, "--host", "127.0.0.1:80")) == [3]
    assert ids(ok("sessions", path, "--host", "127.0.0.1")) == [1, 2, 3]
    assert ids(ok("sessions", path, "--changed")) == [2]
    assert ids(ok("connections", path, "--changed")) == [1]
    assert ids(ok("connections", path, "--host", "127.0.0.1:9")) == []


def test_connections_changed_takes_the_connections_with_a_changed_exchange(cap):
    """--changed adds a condition but no SQL parameter: with it alone, or beside --conn, the
    view once took every connection (or the one --conn names) as if unfiltered. In the sample
    only exchange 3 (connection 2) has flag C."""
    assert ids(ok("sessions", cap, "--changed")) == [3]
    assert ids(ok("connections", cap, "--changed")) == [2]
    assert [k["id"] for k in json.loads(ok("connections", cap, "--changed", "--json"))[
        "connections"]] == [2]
    assert ids(ok("connections", cap, "--conn", "1", "--changed")) == []
    assert ids(ok("connections", cap, "--conn", "2", "--changed")) == [2]
    assert ids(ok("sessions", cap, "--conn", "1", "--changed")) == []
    assert ids(ok("connections", cap, "--changed", "--offset", "1")) == []


# ----------------------------------------------------------------------------- connections

# Issue 11 changed: connection 3, with no close in a proxy's capture, is open.
CONNECTIONS = """\
id  cport  upstream     exch        opened  lifetime  closer  how  auth  mode
 1  50001  40001           2  12:00:00.001     2.50s  client  FIN  -     -
 2  50002  40002,40003     2  12:00:03.000    75.5ms  server  RST  NTLM  -
 3  50003  40004           2  12:00:04.000         -  open    -    -     tunnel+tls
"""


def test_connections_one_a_row(cap):
    assert ok("connections", cap) == CONNECTIONS


def test_connections_filters_and_paging(cap):
    rows = cells(CONNECTIONS)
    assert cells(ok("connections", cap, "--conn", "2")) == [rows[0], rows[2]]
    assert cells(ok("connections", cap, "--limit", "1", "--offset", "2")) == [rows[0], rows[3]]
    assert ids(ok("connections", cap, "--host", "other.test")) == [2]
    assert ids(ok("connections", cap, "--status", "200")) == [1, 3]
    assert ids(ok("connections", cap, "--conn", "9")) == []


def test_connections_json(cap):
    doc = json.loads(ok("connections", cap, "--json", "--conn", "2"))
    assert doc["connections"] == [{
        "id": 2, "client_addr": "127.0.0.1", "client_port": 50002,
        "upstream_ports": [40002, 40003], "exchanges": 2, "opened_us": T0 + 3_000_000,
        "closed_us": T0 + 3_075_500, "lifetime_us": 75_500, "open": False, "closer": "server",
        "close_how": "RST", "auth_scheme": "NTLM", "tls": False, "tunnel": False,
        "bytes_in": 0, "bytes_out": 0}]


# ----------------------------------------------------------------------------- incomplete


@pytest.mark.parametrize("args", [["sessions"], ["show", "1"], ["connections"]])
def test_every_view_warns_when_the_capture_is_incomplete(tmp_path, args):
    path = sample(tmp_path / "i.db", events_dropped=17)
    rc, out, err = view(args[0], path, *args[1:])
    assert rc == 0 and out
    assert err == f"shunt: {path} is incomplete: 17 events were dropped while recording\n"
    rc, out, err = view(args[0], path, *args[1:], "--json")
    assert rc == 0 and err.startswith(f"shunt: {path} is incomplete")
    facts = json.loads(out)["capture"]
    assert (facts["incomplete"], facts["events_dropped"]) == (True, 17)


# ----------------------------------------------------------------------------- bad input


def write(path, data):
    path.write_bytes(data)
    return path


def other_sqlite(path):
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (x)")
    return path


def future(path):
    captures.sample(path)
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA user_version = 99")
    return path


FILES = {
    "missing": (lambda p: p, "{f}: No such file or directory"),
    "not sqlite": (lambda p: write(p, b"hello, not a database\n" * 100),
                   "{f}: not a shunt capture (not an SQLite database: file is not a database)"),
    "other sqlite": (other_sqlite,
                     "{f}: not a shunt capture (an SQLite database of something else)"),
    "newer schema": (future, "{f}: made by a newer shunt (capture schema 99; this shunt reads up "
                             "to 2)"),
    "a folder": (lambda p: (p.mkdir(), p)[1], "{f}: not a file"),
}


@pytest.mark.parametrize("kind", FILES)
@pytest.mark.parametrize("cmd", [["sessions"], ["show", "1"], ["connections"]])
def test_a_wrong_file_is_one_line_and_status_2(tmp_path, kind, cmd):
    make, msg = FILES[kind]
    f = make(tmp_path / "x.db")
    rc, out, err = view(cmd[0], f, *cmd[1:])
    assert (rc, out) == (2, "")
    assert err == f"shunt {cmd[0]}: " + msg.format(f=f) + "\n"


@pytest.mark.parametrize("cmd", [["sessions"], ["show", "1"], ["connections"]])
def test_the_missing_default_file_says_it_is_the_default(tmp_path, cmd):
    rc, out, err = view(*cmd, cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err == (f"shunt {cmd[0]}: shunt.db: No such file or directory (the default capture "
                   "file; name one: FILE)\n")


def test_the_default_file_is_shunt_db_in_the_current_folder(tmp_path):
    sample(tmp_path / "shunt.db")
    assert ok("sessions", cwd=tmp_path) == SESSIONS
    assert ok("show", "1", cwd=tmp_path) == SHOW_1
    assert ok("connections", cwd=tmp_path) == CONNECTIONS


BAD_ARGS = [
    (["show", "{f}", "42"], "shunt show: no exchange 42 in {f}"),
    (["show", "{f}"], "shunt show: which exchange of {f}? expected [FILE] ID"),
    (["show"], "shunt show: which exchange? expected [FILE] ID"),
    (["show", "{f}", "x1"], "shunt show: x1: expected an exchange id (1, 2, ...)"),
    (["show", "{f}", "0"], "shunt show: 0: expected an exchange id (1, 2, ...)"),
    (["show", "{f}", "1", "2"], "shunt show: unexpected argument '2' (see --help)"),
    (["show", "{f}", "1", "--limit", "3"], "shunt show: unknown option '--limit' (see --help)"),
    (["sessions", "{f}", "--limit", "0"], "shunt sessions: --limit 0: expected a whole number (1 or more)"),
    (["sessions", "{f}", "--limit", "ten"], "shunt sessions: --limit ten: expected a whole number (1 or more)"),
    (["sessions", "{f}", "--limit"], "shunt sessions: --limit needs a value"),
    (["sessions", "{f}", "--offset", "-1"], "shunt sessions: --offset -1: expected a whole number (0 or more)"),
    (["sessions", "{f}", "--offset=1e3"], "shunt sessions: --offset 1e3: expected a whole number (0 or more)"),
    (["sessions", "{f}", "--status", "99"], "shunt sessions: --status 99: expected a status code (100-999)"),
    (["sessions", "{f}", "--status", "abc"], "shunt sessions: --status abc: expected a status code (100-999)"),
    (["sessions", "{f}", "--conn", "0"], "shunt sessions: --conn 0: expected a connection id (1, 2, ...)"),
    (["sessions", "{f}", "--host", ""], "shunt sessions: --host needs a host name"),
    (["sessions", "{f}", "--host"], "shunt sessions: --host needs a value"),
    (["sessions", "{f}", "--host", "h.test:0"],
     "shunt sessions: --host h.test:0: expected a host name, or HOST:PORT with a port from 1 to 65535"),
    (["sessions", "{f}", "--bogus"], "shunt sessions: unknown option '--bogus' (see --help)"),
    (["sessions", "{f}", "~q", "other.db"], "shunt sessions: unexpected argument 'other.db' (see --help)"),
    (["connections", "{f}", "--limit=-5"], "shunt connections: --limit -5: expected a whole number (1 or more)"),
    (["connections", "{f}", "-x"], "shunt connections: unknown option '-x' (see --help)"),
]


@pytest.mark.parametrize("args,msg", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_arguments_are_one_line_and_status_2(cap, args, msg):
    rc, out, err = view(*[a.format(f=cap) for a in args])
    assert (rc, out, err) == (2, "", msg.format(f=cap) + "\n")


@pytest.mark.parametrize("cmd", ["sessions", "show", "connections"])
def test_help_is_on_stdout_with_status_0(cmd):
    rc, out, err = view(cmd, "--help")
    assert (rc, err) == (0, "") and out.startswith(f"usage: shunt {cmd} ")


# ----------------------------------------------------------------------------- live files


def test_views_read_a_capture_while_it_is_being_written(tmp_path):
    """A writer commits batches (WAL, as the recorder does) while the views run: each view
    sees a consistent snapshot, never an error, and never fewer rows than the time before."""
    path = tmp_path / "live.db"
    cap = Capture(path)
    conn = cap.connection()
    stop = threading.Event()

    def writer():
        w = sqlite3.connect(path, isolation_level=None)
        w.execute("PRAGMA journal_mode=WAL")
        n = 0
        while not stop.is_set() and n < 5000:  # bounded: the views stay quick under ASan
            w.execute("BEGIN")
            for _ in range(50):
                n += 1
                w.execute("INSERT INTO exchanges (id, conn_id, idx, started_us, method, host,"
                          " path, status, req_head, resp_head) VALUES (?, ?, ?, ?, 'GET',"
                          " 'h.test', ?, 200, ?, ?)",
                          (n, conn, n, T0 + n, f"/{n}", head(b"GET / HTTP/1.1"),
                           head(b"HTTP/1.1 200 OK")))
            w.execute("COMMIT")
            stop.wait(0.005)  # a batch every few ms, like the store thread; not a timing
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = 0
        for _ in range(15):
            doc = json.loads(ok("sessions", path, "--json"))
            got = [e["id"] for e in doc["exchanges"]]
            assert got == list(range(1, len(got) + 1)) and len(got) % 50 == 0
            assert len(got) >= seen
            seen = len(got)
            assert ok("connections", path).count("\n") == 2
            if got:
                assert ok("show", path, got[-1]).startswith(f"exchange {got[-1]}: GET ")
    finally:
        stop.set()
        t.join()
        cap.close()
    assert seen > 0


# ----------------------------------------------------------------------------- paging


def on_terminal(args, rows, cols, env):
    """Runs a view with stdout on a pseudo-terminal of <rows> x <cols>; returns what reached
    the terminal and the status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen([peers.SHUNT_BIN, *[str(a) for a in args]], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    got = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not d:
            break
        got += d
    os.close(master)
    p.wait(timeout=peers.WAIT)
    return p.returncode, got.decode().replace("\r\n", "\n")


def test_a_table_taller_than_the_terminal_goes_through_the_pager(cap, tmp_path):
    paged = tmp_path / "paged"
    env = dict(ENV, PAGER=f"cat > {paged}")
    rc, screen = on_terminal(["sessions", cap], rows=5, cols=120, env=env)
    assert (rc, screen) == (0, "")
    assert paged.read_text() == SESSIONS
    rc, screen = on_terminal(["show", cap, "1"], rows=10, cols=120, env=env)
    assert (rc, screen) == (0, "")
    assert paged.read_text() == SHOW_1


def test_a_table_that_fits_is_not_paged_and_a_pipe_never_is(cap, tmp_path):
    paged = tmp_path / "paged"
    env = dict(ENV, PAGER=f"cat > {paged}")
    rc, screen = on_terminal(["connections", cap], rows=40, cols=120, env=env)
    assert (rc, screen) == (0, CONNECTIONS)
    assert not paged.exists()
    assert ok("sessions", cap, env=env) == SESSIONS  # stdout is a pipe here
    assert not paged.exists()


def test_the_path_column_takes_the_terminal_width(tmp_path):
    with Capture(tmp_path / "w.db") as c:
        conn = c.connection()
        c.exchange(conn, path="/" + "p" * 200)
    rc, screen = on_terminal(["sessions", tmp_path / "w.db"], rows=40, cols=90,
                             env=dict(ENV, PAGER="cat"))
    lines = screen.splitlines()
    assert rc == 0 and len(lines) == 2
    assert len(lines[0]) == 90 and len(lines[1]) == 90 - len("flags") + len("-")
    assert lines[1].split()[6] == "/" + "p" * 14 + "..."


# ----------------------------------------------------------------------------- recorded


def test_recorded_traffic_is_viewed_with_the_ports_both_sides_saw(shunt, origin, tmp_path):
    path = tmp_path / "rec.db"
    px = shunt("--capture", path)
    with px.client() as c:
        c.exchange(get(origin.host, "/one", b"Proxy-Connection: keep-alive\r\n"))
        c.exchange(get(origin.host, "/two?x=1"))
        client_port = c.sock.getsockname()[1]
    origin.wait_requests(2)
    upstream_port = origin.conns[0].peer_port

    def recorded():
        rc, out, _ = view("sessions", path, "--json")
        return rc == 0 and len(json.loads(out)["exchanges"]) == 2

    peers.wait_for(recorded, what="two exchanges in the capture")
    doc = json.loads(ok("sessions", path, "--json"))
    rows = [(e["conn"], e["idx"], e["client_port"], e["method"], e["path"], e["status"])
            for e in doc["exchanges"]]
    assert rows == [(1, 1, client_port, "GET", "/one", 200),
                    (1, 2, client_port, "GET", "/two?x=1", 200)]
    out = ok("show", path, "1")
    assert f"client port {client_port} -> upstream 1 from local port {upstream_port} (new)" in out
    assert "\n- Proxy-Connection: keep-alive\n" in out
    assert f"\n- GET http://{origin.host}/one HTTP/1.1\n+ GET /one HTTP/1.1\n" in out
    assert "(reused)" in ok("show", path, "2")
    table = ok("connections", path).splitlines()
    assert table[1].split()[:4] == ["1", str(client_port), str(upstream_port), "2"]


def test_recorded_traffic_with_curl_while_the_proxy_still_runs(shunt, origin, tmp_path):
    path = tmp_path / "curl.db"
    px = shunt("--capture", path)
    peers.curl("-sS", "-o", "/dev/null", "-x", px.proxy_url, f"http://{origin.host}/a",
               f"http://{origin.host}/b", "--data", "hello=1")

    def recorded():  # both rows there and complete (a row is written pending first)
        rc, out, _ = view("sessions", path)
        return rc == 0 and out.count("\n") == 3 and " wait " not in out

    peers.wait_for(recorded, what="two exchanges in the capture, both complete")
    out = ok("sessions", path, "--host", origin.host.split(":")[0])
    # issue 11: the host column shows the origin's port (not http's 80)
    assert [l.split()[4:8] for l in out.splitlines()[1:]] == [
        ["POST", origin.host, "/a", "200"],
        ["POST", origin.host, "/b", "200"]]
    assert "request body: 7 bytes, text:\n  hello=1\n" in ok("show", path, "1")
