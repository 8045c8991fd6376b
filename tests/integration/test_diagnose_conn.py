"""`shunt diagnose`'s checks about how connections end and how often they are reused:
client-closes-early, idle-timeout-race and low-reuse (docs/diagnose.md). Captures recorded
with the real lab (`shunt lab origin`, `shunt lab client`), scripted origins and curl through
`shunt proxy --capture`, and hand-written HARs; exactly which findings appear, their counts,
units, examples and impact, and which must not appear. Also the lab client's --max-per-conn
and --reset, which reproduce early closes."""
import http.client
import json
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

import peers
from test_diagnose import diagnose, findings, record, write_har  # noqa: F401 (record: fixture)

U = "http://intranet.example/"


def lab_client(*args):
    """Runs `shunt lab client --json ARGS`; returns its summary."""
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--json"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=peers.WAIT,
                       stdin=subprocess.DEVNULL)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def through(shunt, tmp_path):
    """through(run) -> capture path: a proxy recording to a new capture; run(proxy_port) sends
    the traffic; the proxy is stopped (capture complete) before the path is returned."""
    def go(run, name="cap.db"):
        path = tmp_path / name
        px = shunt("--capture", path)
        run(px.port)
        assert px.stop() == []
        return path

    return go


def closes(path):
    """(closer, close_how) of each connection of the capture, by id."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
        return c.execute("SELECT closer, close_how FROM connections ORDER BY id").fetchall()


def entry(t, url, status, conn, error=None, shunt=None, req_headers=()):
    """A HAR entry at second <t> on connection <conn>; status 0 is a request that got no
    response (with Chrome's response._error <error>); <shunt> is shunt's own _shunt."""
    e = {
        "startedDateTime": f"2026-11-26T12:00:{t:02d}.000Z", "time": 5, "connection": conn,
        "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1",
                    "headers": [{"name": "Host", "value": "intranet.example"}] +
                               [{"name": n, "value": v} for n, v in req_headers],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": status, "statusText": "OK" if status else "",
                     "httpVersion": "HTTP/1.1" if status else "",
                     "headers": [{"name": "Content-Length", "value": "2"}] if status else [],
                     "cookies": [], "content": {"size": 2 if status else 0,
                                                "mimeType": "text/plain"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 2 if status else 0},
        "cache": {}, "timings": {"send": 1, "wait": 3, "receive": 1},
    }
    if error:
        e["response"]["_error"] = error
    if shunt:
        # shunt's own HAR carries the heads as they were on the wire
        path = "/" + url.split("/", 3)[3]
        req = f"GET {path} HTTP/1.1\r\n" + "".join(
            f"{h['name']}: {h['value']}\r\n" for h in e["request"]["headers"]) + "\r\n"
        resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" if status else None
        e["_shunt"] = dict(shunt, request_head_received=req, response_head_received=resp)
    return e


def shunt_har(path, entries):
    """A HAR that says it comes from shunt, so that its _shunt fields (who closed) count."""
    path.write_text(json.dumps({"log": {"version": "1.2",
                                        "creator": {"name": "shunt", "version": "1"},
                                        "entries": entries}}))
    return path


# ----------------------------------------------------------------------------- lab client


def test_lab_client_max_per_conn_closes_after_n_final_responses(origin):
    s = lab_client("--requests", 7, "--max-per-conn", 3, origin.url + "/")
    assert (s["ok"], s["connections_opened"], s["closed_by_client"], s["open_at_end"]) == \
        (7, 3, 2, 1)
    assert (s["max_per_conn"], s["reset"]) == (3, False)
    assert [len(c.requests) for c in origin.conns] == [3, 3, 1]
    assert [c.wait_end() for c in origin.conns] == ["FIN"] * 3


def test_lab_client_reset_ends_its_own_closes_with_rst(origin):
    s = lab_client("--requests", 2, "--max-per-conn", 1, "--reset", origin.url + "/")
    assert (s["ok"], s["connections_opened"], s["closed_by_client"], s["reset"]) == \
        (2, 2, 2, True)
    assert [c.wait_end() for c in origin.conns] == ["RST", "RST"]


def test_lab_client_max_per_conn_usage():
    for bad in ("0", "x", "1000001"):
        p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--max-per-conn", bad,
                            "http://127.0.0.1:9/"], capture_output=True, text=True,
                           timeout=peers.WAIT)
        assert p.returncode == 2 and "--max-per-conn" in p.stderr, (bad, p.stderr)
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--help"], capture_output=True,
                       text=True, timeout=peers.WAIT)
    assert "--max-per-conn N" in p.stdout and "--reset" in p.stdout


# ----------------------------------------------------------------------------- client-closes-early


def test_max_per_conn_is_client_closes_early(record):
    path, s = record([], ["--requests", 6, "--max-per-conn", 2])
    assert (s["connections_opened"], s["closed_by_client"]) == (3, 3)
    ids, doc = findings(path)
    assert ids == ["client-closes-early"]
    f = doc["findings"][0]
    # the third connection's close cost nothing: the run was over
    assert (f["confidence"], f["count"], f["unit"]) == ("likely", 2, "connections")
    assert f["examples"] == {"connections": [1, 2], "exchanges": [2, 4]}
    assert f["impact"]["connections"] == 2 and f["impact"]["handshakes"] == 0
    assert "closed 2 connections with a FIN" in f["what"]
    assert "each after exactly 2 requests" in f["what"]
    assert "--max-per-conn" in f["proof"] and f["explained_by"] is None


def test_client_reset_is_client_closes_early_with_rst(record):
    path, s = record([], ["--requests", 5, "--max-per-conn", 1, "--reset"])
    assert s["closed_by_client"] == 5
    assert closes(path) == [("client", "RST")] * 5
    ids, doc = findings(path)
    assert ids == ["client-closes-early"]  # and not low-reuse: these closes are explained
    f = doc["findings"][0]
    assert (f["count"], f["impact"]["connections"]) == (4, 4)
    assert "reset 4 connections (RST)" in f["what"] and "exactly 1 request," in f["what"]
    assert f["examples"] == {"connections": [1, 2, 3], "exchanges": [1, 2, 3]}


def test_client_closing_authenticated_connections_causes_the_reauth_storm(record):
    path, s = record(["--auth", "ntlm"], ["--requests", 4, "--max-per-conn", 1])
    assert s["handshakes"] == 4
    ids, doc = findings(path)
    assert ids == ["client-closes-early", "reauth-storm"]
    f, r = doc["findings"]
    assert (f["count"], f["impact"]["handshakes"], f["impact"]["connections"]) == (3, 3, 3)
    assert "each after exactly 1 request," in f["what"] and "authenticated again" in f["what"]
    assert f["examples"] == {"connections": [1, 2, 3], "exchanges": [3, 6, 9]}
    assert r["explained_by"] == "client-closes-early" and r["impact"]["handshakes"] == 3


def test_keepalive_client_does_not_close_early(record):
    path, s = record(["--auth", "ntlm"], ["--requests", 8])
    assert s["connections_opened"] == 1
    assert findings(path)[0] == []


def test_story_is_wininet_auth_close_not_client_closes_early(record):
    path, _ = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 6])
    assert findings(path)[0] == ["wininet-auth-close", "reauth-storm"]


def test_story_closed_with_resets_is_not_wininets_graceful_close(record):
    # WinINet closes with a FIN; the same closes as resets are something else.
    path, _ = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 6, "--reset"])
    ids, doc = findings(path)
    assert ids == ["client-closes-early", "reauth-storm"]
    assert "reset 5 connections (RST)" in doc["findings"][0]["what"]


def test_client_that_asked_to_close_is_not_closing_early_but_low_reuse(origin, through):
    # The origin keeps every connection; curl asks Connection: close, and the proxy, which
    # honours it, ends each connection after the response.
    urls = [f"{origin.url}/{i}" for i in range(5)]
    path = through(lambda port: peers.curl("-x", f"http://127.0.0.1:{port}", "-H",
                                           "Connection: close", *urls))
    assert closes(path) == [("proxy", "FIN")] * 5
    ids, doc = findings(path)
    assert ids == ["low-reuse"]
    f = doc["findings"][0]
    assert (f["confidence"], f["count"], f["unit"]) == ("certain", 4, "connections")
    assert "5 requests on 5 connections (1.0 per connection)" in f["what"]
    assert "4 after a request that asked to close" in f["what"]
    assert f["impact"]["connections"] == 4 and f["impact"]["handshakes"] == 0
    assert f["examples"] == {"connections": [1, 2, 3], "exchanges": [1, 2, 3]}


def test_separate_runs_of_curl_seconds_apart_are_ordinary_use(origin, through):
    # Issue 11: curl run five times, 2 s apart (as by hand, or a script with a pause): each
    # process opens a connection and closes it with a FIN at exit. The next run replaced
    # nothing: "let the client keep its connections" is no advice for that.
    def runs(port):
        for i in range(5):
            if i:
                time.sleep(2)
            assert peers.curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/{i}",
                              "-o", "/dev/null").returncode == 0
    path = through(runs)
    assert closes(path) == [("client", "FIN")] * 5
    ids, _ = findings(path)
    assert "client-closes-early" not in ids and "low-reuse" not in ids, ids
    assert ids == []


def curl_runs(origin, port, gap, *curl_args):
    """curl run 5 times through the proxy on <port>, <gap> seconds apart (a shell loop)."""
    for i in range(5):
        if i:
            time.sleep(gap)
        assert peers.curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/{i}", "-o",
                          "/dev/null", *curl_args).returncode == 0


def test_separate_runs_of_curl_back_to_back_are_ordinary_use(origin, through):
    # Review of issue 11, finding 7: a shell loop of curl, 40 ms apart, under the pace's 1 s
    # floor. The curl tool closes its connection only at exit: the next run replaced nothing
    # (docs/diagnose.md, Successor), whatever the pause.
    path = through(lambda port: curl_runs(origin, port, 0.04))
    assert closes(path) == [("client", "FIN")] * 5
    ids, _ = findings(path)
    assert ids == []


def test_back_to_back_runs_of_an_unknown_tool_read_as_its_policy(origin, through):
    # ... the same runs with another User-Agent: nothing in the capture tells separate
    # processes from one client that opens a connection per request (docs/diagnose.md)
    path = through(lambda port: curl_runs(origin, port, 0.04, "-A", "fetcher/1.0"))
    assert closes(path) == [("client", "FIN")] * 5
    ids, doc = findings(path)
    assert ids == ["client-closes-early"]
    assert doc["findings"][0]["count"] == 4


def test_connections_still_open_when_the_proxy_dies_were_not_closed_early(lab_origin, tmp_path):
    # Review of issue 11, finding 4: a client keeps 4 keep-alive connections open, 100 ms
    # apart, and the proxy is killed (SIGKILL): each connection's row has no close time and no
    # closer (open, docs/capture.md). Nobody closed them, nothing replaced them: neither
    # diagnose nor diff may read them as a HAR's "closer unknown" (an early close each).
    # (Not the shunt fixture: its teardown rightly fails a proxy that died by a signal.)
    o = lab_origin()
    path = tmp_path / "open.db"
    px = peers.Shunt(["--capture", str(path)])
    kept = []
    try:
        for i in range(4):
            c = http.client.HTTPConnection("127.0.0.1", px.port, timeout=peers.WAIT)
            c.request("GET", o.url(f"/p{i}"))
            r = c.getresponse()
            assert r.status == 200 and not r.will_close
            r.read()
            kept.append(c)
            time.sleep(0.1)
        deadline = time.monotonic() + peers.WAIT
        while True:  # every exchange written whole before the kill
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                done = db.execute("SELECT count(*) FROM exchanges WHERE status = 200 AND "
                                  "flags & 16 = 0").fetchone()[0]
            if done == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert done == 4
    finally:
        px.signal(signal.SIGKILL)
        px.wait_exit()
        for c in kept:
            c.close()
    assert closes(path) == [(None, None)] * 4
    ids, doc = findings(path)
    assert ids == [], doc["findings"]
    p = subprocess.run([peers.SHUNT_BIN, "diff", str(path), str(path), "--json"],
                       capture_output=True, text=True, timeout=peers.WAIT,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and not peers.SANITIZER_RE.search(p.stderr), p.stderr
    conns = json.loads(p.stdout)["connections"]
    for side in (conns["a"], conns["b"]):
        assert side["closed_by_client"] == {"fin": 0, "other": 0, "early": 0}, side
        assert side["closer_unknown"] == 4  # "closer not known (open, or a HAR)"


def test_back_to_back_closes_are_still_client_closes_early(record):
    # ... while a client that closes and opens again at once, at the pace of its traffic,
    # replaced each connection
    path, s = record([], ["--requests", 5, "--max-per-conn", 1])
    assert closes(path) == [("client", "FIN")] * 5
    ids, doc = findings(path)
    assert ids == ["client-closes-early"]
    assert doc["findings"][0]["count"] == 4


# ----------------------------------------------------------------------------- a rule's close


@pytest.mark.parametrize("proxy_args, rule, where", [
    # the rule sets Connection: close on the response: shunt closes each connection itself
    (["--rules", peers.ROOT / "examples/rules/force-connection-close.lua"],
     "force-connection-close.lua:7", "on the response sent to the client"),
    # on the request: the server closes each connection, as it was asked to
    (["--modify-headers", "/~q/Connection/close"], "--modify-headers #1",
     "on the request sent to the server"),
])
def test_a_close_a_rule_asked_for_is_the_rules(shunt, lab_origin, tmp_path, proxy_args, rule,
                                               where):
    # Issue 11: neither the client nor the server chose these closes; the user's rule did,
    # and diagnose says so rather than blame the server (or the client, or low reuse).
    o = lab_origin("-q")
    path = tmp_path / "rule.db"
    px = shunt("--capture", path, *proxy_args)
    s = lab_client("--proxy", f"127.0.0.1:{px.port}", "--requests", 5, o.url("/"))
    assert px.stop() == []
    assert (s["ok"], s["connections_opened"]) == (5, 5)
    ids, doc = findings(path)
    assert ids == ["rule-closes-keepalive"]
    f = doc["findings"][0]
    assert (f["confidence"], f["count"], f["unit"]) == ("certain", 4, "connections")
    assert f["what"].startswith(f"Your rule {rule} ended 4 connections"), f["what"]
    assert where in f["what"]
    # (exchange ids are given as exchanges end: on a busy machine not always in order)
    assert f["examples"]["connections"] == [1, 2, 3] and len(f["examples"]["exchanges"]) == 3


def test_a_rule_that_breaks_handshakes_causes_what_follows(shunt, lab_origin, tmp_path):
    # The rule closes after NTLM's challenge too: each leg goes on a new connection and is
    # refused, and the handshakes repeat. Both are the rule's consequences, ranked after it.
    o = lab_origin("-q", "--auth", "ntlm")
    path = tmp_path / "rule-ntlm.db"
    px = shunt("--capture", path, "--rules",
               peers.ROOT / "examples/rules/force-connection-close.lua")
    s = lab_client("--proxy", f"127.0.0.1:{px.port}", "--requests", 5, o.url("/"))
    assert px.stop() == []
    assert s["auth_failures"] == 5
    ids, doc = findings(path)
    assert ids[0] == "rule-closes-keepalive"
    assert sorted(ids[1:]) == ["auth-connection-switch", "reauth-storm"]
    assert all(f["explained_by"] == "rule-closes-keepalive" for f in doc["findings"][1:])


def test_exported_capture_keeps_client_closes_early(record, tmp_path):
    path, _ = record([], ["--requests", 6, "--max-per-conn", 2])
    har = tmp_path / "early.har"
    p = subprocess.run([peers.SHUNT_BIN, "export", str(path), "--har", str(har)],
                       capture_output=True, text=True, timeout=peers.WAIT)
    assert p.returncode == 0, p.stderr
    ids, doc = findings(har)
    assert ids == ["client-closes-early"] and doc["capture"]["from_har"] is True
    assert doc["findings"][0]["count"] == 2


def test_har_client_closes_early_needs_to_know_who_closed(tmp_path):
    # shunt's own HAR says who closed; a browser's does not, and the check stays silent.
    sh = [{"conn_id": i + 1, "closer": "client", "close_how": how}
          for i, how in enumerate(["RST", "FIN", "FIN"])]
    har = shunt_har(tmp_path / "early.har",
                    [entry(i, U + "a", 200, str(i + 1), shunt=sh[i]) for i in range(3)])
    ids, doc = findings(har)
    assert ids == ["client-closes-early"]
    f = doc["findings"][0]
    assert (f["count"], f["examples"]["connections"]) == (2, [1, 2])
    assert "ended 2 connections (1 with a FIN, 1 reset)" in f["what"]
    # the same with the request asking to close: the client did what it said
    har = shunt_har(tmp_path / "asked.har",
                    [entry(i, U + "a", 200, str(i + 1), shunt=sh[i],
                           req_headers=[("Connection", "close")]) for i in range(3)])
    assert findings(har)[0] == []
    plain = write_har(tmp_path / "plain.har",
                      [entry(i, U + "a", 200, str(i + 1)) for i in range(3)])
    assert findings(plain)[0] == []


# ----------------------------------------------------------------------------- idle-timeout-race


def close_second_request(how):
    """An origin handler: answers the first request of each connection, then reads the second
    and ends the connection without answering it (FIN, or a reset) - what a server whose
    keep-alive timeout fires as the request arrives does, made deterministic."""
    def handler(conn):
        if conn.recv_request() is None:
            return
        conn.send(peers.response(body=b"ok"))
        if conn.recv_request() is None:
            return
        conn.reset() if how == "RST" else conn.close()

    return handler


@pytest.mark.parametrize("how", ["FIN", "RST"])
def test_server_closing_a_reused_connection_is_idle_timeout_race(origin, through, how):
    origin.handler = close_second_request(how)
    url = origin.url + "/page"
    s = {}
    path = through(lambda port: s.update(lab_client("--proxy", f"127.0.0.1:{port}",
                                                    "--requests", 7, url)))
    # the proxy mirrors each close (no 502 of its own), so the client retries the request on
    # a new connection, as it would talking to the server directly; the retry is that
    # connection's first request, the next one its second: six races for seven requests
    assert s["statuses"] == {"200": 7} and s["connections_opened"] == 7
    ids, doc = findings(path)
    assert ids == ["idle-timeout-race"]  # and not low-reuse: these ends are explained
    f = doc["findings"][0]
    assert (f["confidence"], f["count"], f["unit"]) == ("certain", 6, "exchanges")
    # what the proxy recorded, which the check reads: no response, and why (exchange ids
    # follow the order exchanges ended, hence the query)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT id, conn_id, idx, status, error, resp_head FROM exchanges "
                         "WHERE status IS NULL ORDER BY conn_id").fetchall()
    assert [r[1:4] for r in rows] == [(k, 2, None) for k in range(1, 7)]
    assert all(r[5] is None for r in rows)
    assert rows[0][4] == ("server closed the reused connection without responding"
                          if how == "FIN" else
                          "server reset the reused connection without responding")
    assert f["examples"] == {"connections": [1, 2, 3], "exchanges": [r[0] for r in rows[:3]]}
    assert f["impact"]["connections"] == 6 and f["impact"]["handshakes"] == 0
    assert f["impact"]["ms"] > 0
    said = {"FIN": "the server had closed the connection (FIN)",
            "RST": "the server had reset the connection"}[how]
    assert "6 requests sent on a reused connection" in f["what"] and said in f["what"]
    assert "keepalive_timeout" in f["fix"] and "9.3.1" in f["fix"]


def test_unanswered_request_on_a_new_connection_is_no_race(origin, through):
    # The server ends a fresh connection without answering: not a reused connection.
    def handler(conn):
        if conn.recv_request() is not None:
            conn.close()

    origin.handler = handler
    url = origin.url + "/"
    path = through(lambda port: lab_client("--proxy", f"127.0.0.1:{port}", "--requests", 3,
                                           url))
    assert "idle-timeout-race" not in findings(path)[0]


def test_idle_close_the_client_saw_coming_is_no_race(record):
    # The origin closes connections idle for 50 ms; the client waits 500 ms between requests
    # and finds each connection closed before reusing it: no request is lost.
    path, s = record(["--idle-timeout", "0.05"], ["--requests", 3, "--think", 500])
    assert (s["ok"], s["connections_opened"], s["closed_by_server"]) == (3, 3, 2)
    assert closes(path)[:2] == [("server", "FIN")] * 2
    assert findings(path)[0] == []  # 2 replaced connections: under low-reuse's threshold


def test_har_failed_request_then_the_same_again_is_a_likely_race(tmp_path):
    har = write_har(tmp_path / "race.har", [
        entry(0, U + "a", 200, "1"),
        entry(10, U + "b", 0, "1", error="net::ERR_EMPTY_RESPONSE"),
        entry(11, U + "b", 200, "2"),
    ])
    ids, doc = findings(har)
    assert ids == ["idle-timeout-race"]
    f = doc["findings"][0]
    assert (f["confidence"], f["count"], f["unit"]) == ("likely", 1, "exchanges")
    assert f["examples"] == {"connections": [1], "exchanges": [2]}
    assert 'the capture only says "net::ERR_EMPTY_RESPONSE"' in f["what"]
    assert "after 9995 ms idle" in f["what"]  # from the end of exchange 1 (5 ms) to 2
    # not sent again (another URL next), or not on a reused connection: no race
    other = write_har(tmp_path / "other.har", [
        entry(0, U + "a", 200, "1"),
        entry(10, U + "b", 0, "1", error="net::ERR_EMPTY_RESPONSE"),
        entry(11, U + "c", 200, "2"),
    ])
    assert findings(other)[0] == []
    first = write_har(tmp_path / "first.har", [
        entry(0, U + "b", 0, "1", error="net::ERR_CONNECTION_RESET"),
        entry(1, U + "b", 200, "2"),
    ])
    assert findings(first)[0] == []


# ----------------------------------------------------------------------------- low-reuse


@pytest.mark.parametrize("requests,found", [(4, False), (5, True)])
def test_http10_client_is_low_reuse_from_four_replaced_connections(record, requests, found):
    path, s = record([], ["--policy", "http10", "--requests", requests])
    assert s["connections_opened"] == requests
    ids, doc = findings(path)
    assert ids == (["low-reuse"] if found else [])
    if found:
        f = doc["findings"][0]
        assert (f["count"], f["impact"]["connections"]) == (4, 4)
        assert "5 requests on 5 connections (1.0 per connection)" in f["what"]
        assert "4 after a request that asked to close (Connection: close or HTTP/1.0)" \
            in f["what"]


def test_har_low_reuse_counts_requests_per_connection(tmp_path):
    # five connections of one request each: low; of two requests each: not below 2
    har = write_har(tmp_path / "low.har",
                    [entry(i, U + f"{i}", 200, str(i + 1)) for i in range(5)])
    ids, doc = findings(har)
    assert ids == ["low-reuse"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["confidence"]) == (4, "connections", "certain")
    assert "4 closed by the proxy or unknown" in f["what"]
    assert f["examples"] == {"connections": [1, 2, 3], "exchanges": [1, 2, 3]}
    two = write_har(tmp_path / "two.har",
                    [entry(i, U + f"{i}", 200, str(i // 2 + 1)) for i in range(10)])
    assert findings(two)[0] == []


@pytest.mark.parametrize("origin_args,client_args,ids", [
    (["--close-after", 1], ["--requests", 6], ["server-closes-keepalive"]),
    ([], ["--requests", 6, "--max-per-conn", 1], ["client-closes-early"]),
    (["--auth", "ntlm", "--no-server-header"], ["--policy", "wininet", "--requests", 6],
     ["wininet-auth-close", "reauth-storm"]),
])
def test_low_reuse_stays_silent_where_another_check_explains_the_closes(
        record, origin_args, client_args, ids):
    path, s = record(origin_args, client_args)
    assert s["connections_opened"] == 6
    assert findings(path)[0] == ids


def test_low_reuse_with_handshakes_explains_the_reauth_storm(tmp_path):
    # NTLM on a connection per request, closer unknown (a HAR): nothing says why they ended,
    # low-reuse counts them and the storm of handshakes is its consequence.
    ntlm1 = "NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA="
    ents = []
    for i in range(5):
        ents.append(entry(2 * i, U + f"{i}", 401, str(i + 1)))
        ents[-1]["response"]["headers"].append({"name": "WWW-Authenticate", "value": "NTLM"})
        ents.append(entry(2 * i + 1, U + f"{i}", 200, str(i + 1),
                          req_headers=[("Authorization", ntlm1)]))
        # a Server header: not the story's pattern
        ents[-1]["response"]["headers"].append({"name": "Server", "value": "Microsoft-IIS/10.0"})
    har = write_har(tmp_path / "ntlm.har", ents)
    ids, doc = findings(har)
    assert ids == ["low-reuse", "reauth-storm"]
    f, r = doc["findings"]
    assert "5 requests on 5 connections (1.0 per connection)" in f["what"]
    assert f["impact"]["handshakes"] == 4 and "started 4 handshakes again" in f["what"]
    assert r["explained_by"] == "low-reuse"
