"""`shunt diagnose`: captures recorded with the real lab (`shunt lab origin` and `shunt lab
client` through `shunt proxy --capture`) and hand-written HARs, diagnosed; exactly which
findings appear and which do not, their ranking, the --json shape, exit statuses (0 no
finding, 1 findings, 2 bad input), and `shunt lab demo`'s capture (docs/diagnose.md)."""
import json
import os
import re
import sqlite3
import subprocess

import pytest

import peers

CHECKS = ["wininet-auth-close", "reauth-storm", "server-closes-keepalive",
          "rule-closes-keepalive", "client-closes-early", "idle-timeout-race", "auth-connection-switch",
          "hop-by-hop-misuse", "low-reuse", "unframed-or-overlong-body",
          "via-breaks-auth-persistence", "client-quirk", "tls-client-rejects-cert",
          "tls-upstream-cert-invalid"]


def diagnose(*args):
    """Runs `shunt diagnose ARGS`; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([peers.SHUNT_BIN, "diagnose"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=peers.WAIT, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode >= 0, f"diagnose killed by signal {-p.returncode}: {p.stderr}"
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    return p.returncode, p.stdout, p.stderr


_OPTIONS = {}


def options_of(command):
    """The long options that `shunt COMMAND --help` lists (<command>: "proxy", "lab origin")."""
    if command not in _OPTIONS:
        p = subprocess.run([peers.SHUNT_BIN] + command.split() + ["--help"],
                           capture_output=True, text=True, timeout=peers.WAIT,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        _OPTIONS[command] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", p.stdout))
    return _OPTIONS[command]


def assert_commands_exist(finding):
    """Every option that the why, fix or proof of <finding> gives to `shunt proxy`, `shunt lab
    origin` or `shunt lab client` is one that command has: what a finding tells the reader to
    run must run."""
    for field in ("why", "fix", "proof"):
        for part in finding[field].split("shunt ")[1:]:
            command = next((c for c in ("proxy", "lab origin", "lab client")
                            if part.startswith(c + " ")), None)
            if command is None:
                continue
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", part):
                assert option in options_of(command), (finding["id"], field, command, option)


def findings(path, *args):
    """The ids of the findings on <path>, in rank order, and the JSON document. Every
    command a finding names must exist (assert_commands_exist)."""
    rc, out, err = diagnose(path, *args, "--json")
    doc = json.loads(out)
    ids = [f["id"] for f in doc["findings"]]
    assert rc == (1 if ids else 0), (rc, err)
    for f in doc["findings"]:
        assert_commands_exist(f)
    return ids, doc


@pytest.fixture
def record(shunt, lab_origin, tmp_path):
    """record(origin_args, client_args) -> capture path: a lab origin, a proxy recording to a
    new capture, the lab client through it; the proxy is stopped (capture complete) before
    the path is returned."""
    def run(origin_args, client_args, name="cap.db"):
        o = lab_origin("-q", *origin_args)
        path = tmp_path / name
        px = shunt("--capture", path)
        p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--json", "--proxy",
                            f"127.0.0.1:{px.port}"] + [str(a) for a in client_args] +
                           [f"http://127.0.0.1:{o.port}/"],
                           capture_output=True, text=True, timeout=peers.WAIT,
                           stdin=subprocess.DEVNULL)
        summary = json.loads(p.stdout)
        problems = px.stop()
        assert problems == [], problems
        return path, summary

    return run


# ----------------------------------------------------------------------------- the story


def test_story_is_wininet_auth_close_then_its_reauth_storm(record):
    path, s = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 10])
    assert (s["connections_opened"], s["handshakes"]) == (10, 10)
    ids, doc = findings(path)
    assert ids == ["wininet-auth-close", "reauth-storm"]
    w, r = doc["findings"]
    # the last connection's close cost nothing: nine were followed by a new connection
    assert (w["rank"], w["confidence"], w["count"], w["unit"]) == (1, "certain", 9, "connections")
    assert w["impact"]["handshakes"] == 9 and w["impact"]["connections"] == 9
    assert w["impact"]["ms"] > 0
    assert w["examples"] == {"connections": [1, 2, 3], "exchanges": [2, 4, 6]}
    assert "none of those responses had a Server header" in w["what"]
    assert "add-server-header.lua" in w["proof"] and "Add Server Header" in w["proof"]
    assert w["explained_by"] is None
    assert (r["explained_by"], r["count"], r["unit"]) == ("wininet-auth-close", 10, "handshakes")
    assert r["impact"]["handshakes"] == 9


def test_story_human_report_reads_like_a_note(record):
    path, _ = record(["--auth", "ntlm", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 5])
    rc, out, err = diagnose(path)
    assert rc == 1, err
    lines = out.splitlines()
    assert lines[0] == (f"shunt diagnose: {path}: 15 exchanges on 5 connections; "
                        f"{len(CHECKS)} checks, 2 findings")
    assert lines[2].startswith("1. wininet-auth-close  (certain)  4 connections, ~4 handshakes "
                               "and ~")
    assert "   examples: connections 1, 2, 3 (exchanges 3, 6, 9)" in lines
    assert any(l.startswith("   why: WinINet") for l in lines)
    assert any(l.startswith("   fix: stop stripping the Server header") for l in lines)
    assert any(l.startswith("   prove it: shunt proxy --rules examples/rules/add-server-header")
               for l in lines)
    assert "2. reauth-storm  (certain)" in out
    assert "   (a consequence of finding 1, wininet-auth-close)" in lines
    assert max(len(l) for l in lines[1:]) <= 80, out  # the first names the file


def test_one_of_a_unit_is_singular_in_the_report(record):
    # one close, followed by one new connection: the report says "1 connection", and the
    # sentence agrees; the JSON unit stays the plural noun (docs/diagnose.md)
    path, _ = record(["--auth", "ntlm", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 2])
    rc, out, err = diagnose(path)
    assert rc == 1, err
    lines = out.splitlines()
    assert lines[2].startswith("1. wininet-auth-close  (likely)  1 connection, ~1 handshake "
                               "and ~"), out
    end = lines.index("   examples: connection 1 (exchange 3)")
    what = " ".join(l.strip() for l in lines[3:end])
    assert what.startswith("The client closed 1 connection with a FIN right after a 200 that "
                           "ended an authentication handshake; that response had no Server "
                           "header. It then opened a new connection"), out
    _, doc = findings(path)
    assert (doc["findings"][0]["count"], doc["findings"][0]["unit"]) == (1, "connections")

    path, _ = record(["--auth", "none", "--close-after", 1], ["--requests", 2], name="sck.db")
    rc, out, err = diagnose(path)
    lines = out.splitlines()
    assert lines[2].startswith("1. server-closes-keepalive  (certain)  1 connection, ~"), out
    end = lines.index("   examples: connection 1 (exchange 1)")
    what = " ".join(l.strip() for l in lines[3:end])
    assert what == (
        "The server ended 1 connection that the client asked to keep (1 with Connection: "
        "close); the client had to open a new one."), out


@pytest.mark.parametrize("server", ["Microsoft-IIS/6.0", "nginx"])
def test_fixed_story_has_no_finding(record, server):
    path, s = record(["--auth", "negotiate", "--server-header", server],
                     ["--policy", "wininet", "--requests", 10])
    assert (s["connections_opened"], s["handshakes"]) == (1, 1)
    ids, doc = findings(path)
    assert ids == []
    rc, out, _ = diagnose(path)
    assert rc == 0 and "no finding" in out


def test_old_iis_server_counts_as_missing(record):
    path, _ = record(["--auth", "ntlm", "--server-header", "Microsoft-IIS/3.0"],
                     ["--policy", "wininet", "--requests", 4])
    ids, doc = findings(path)
    assert ids == ["wininet-auth-close", "reauth-storm"]
    assert "named IIS 1.0-3.0" in doc["findings"][0]["what"]


def test_keepalive_client_without_server_header_is_fine(record):
    # Not WinINet: the missing header changes nothing, and the one close at the end cost
    # nothing, so no finding.
    path, s = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "keepalive", "--requests", 10])
    assert s["connections_opened"] == 1
    assert findings(path)[0] == []


# ----------------------------------------------------------------------------- server closes


def test_server_connection_close_is_server_closes_keepalive(record):
    path, s = record(["--auth", "none", "--close-after", 1], ["--requests", 6])
    assert s["connections_opened"] == 6 and s["closed_by_server"] >= 5
    ids, doc = findings(path)
    assert ids == ["server-closes-keepalive"]
    f = doc["findings"][0]
    assert (f["count"], f["unit"], f["impact"]["connections"]) == (5, "connections", 5)
    assert "Connection: close" in f["what"]
    assert f["examples"]["connections"] == [1, 2, 3]


def test_server_closes_authenticated_connections_costs_handshakes(record):
    path, _ = record(["--auth", "ntlm", "--close-after", 3], ["--requests", 4])
    ids, doc = findings(path)
    assert "server-closes-keepalive" in ids and "wininet-auth-close" not in ids
    f = doc["findings"][ids.index("server-closes-keepalive")]
    assert f["impact"]["handshakes"] >= 1


def test_server_http10_is_server_closes_keepalive(record):
    path, _ = record(["--http10"], ["--requests", 4])
    ids, doc = findings(path)
    assert ids == ["server-closes-keepalive"]
    assert "HTTP/1.0 without keep-alive" in doc["findings"][0]["what"]


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_http10_client_is_never_wininet_auth_close(record, auth):
    # Issue 11: shunt lab client --policy http10 asks for no persistent connection (its
    # final legs are HTTP/1.0 without keep-alive), so the story's rule, a close of a
    # connection the client meant to keep, never counts its connections, Server or not.
    path, s = record(["--auth", auth, "--no-server-header"],
                     ["--policy", "http10", "--requests", 5])
    assert (s["ok"], s["handshakes"]) == (5, 5)
    ids, _ = findings(path)
    assert "wininet-auth-close" not in ids, ids


def test_client_asking_http10_is_not_the_servers_doing(record):
    path, _ = record(["--http10"], ["--policy", "http10", "--requests", 4])
    assert findings(path)[0] == []


# ----------------------------------------------------------------------------- auth switch


@pytest.mark.parametrize("auth", ["ntlm", "negotiate"])
def test_split_handshake_is_auth_connection_switch(record, auth):
    path, s = record(["--auth", auth], ["--split-handshake", "--requests", 2])
    assert s["auth_failures"] >= 1
    ids, doc = findings(path)
    assert ids[0] == "auth-connection-switch", ids
    assert "wininet-auth-close" not in ids and "server-closes-keepalive" not in ids
    # the client's closes after the challenges and the refused legs are the handshake's,
    # counted once, not also as closes "early"
    assert "client-closes-early" not in ids
    f = doc["findings"][0]
    assert f["unit"] == "legs" and f["count"] >= 2 and f["confidence"] == "certain"
    assert "refused" in f["what"]
    if "reauth-storm" in ids:
        assert doc["findings"][ids.index("reauth-storm")]["explained_by"] == \
            "auth-connection-switch"


def test_paired_ntlm_handshake_is_no_switch(record):
    path, s = record(["--auth", "ntlm"], ["--requests", 5])
    assert s["handshakes"] == 1
    assert findings(path)[0] == []


# ----------------------------------------------------------------------------- HAR


def har_entry(t, url, req_headers, status, resp_headers, http="HTTP/1.1", conn="1"):
    return {
        "startedDateTime": f"2026-11-26T12:00:{t:02d}.000Z", "time": 5, "connection": conn,
        "request": {"method": "GET", "url": url, "httpVersion": http,
                    "headers": [{"name": n, "value": v} for n, v in req_headers],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": status, "statusText": "OK", "httpVersion": http,
                     "headers": [{"name": n, "value": v} for n, v in resp_headers],
                     "cookies": [], "content": {"size": 2, "mimeType": "text/plain", "text": "ok"},
                     "redirectURL": "", "headersSize": -1, "bodySize": 2},
        "cache": {}, "timings": {"send": 1, "wait": 3, "receive": 1},
    }


def write_har(path, entries):
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "test",
                                                                      "version": "1"},
                                        "entries": entries}}))
    return path


def test_har_with_hop_by_hop_fields_is_hop_by_hop_misuse(tmp_path):
    u = "http://intranet.example/"
    har = write_har(tmp_path / "hop.har", [
        har_entry(0, u + "a", [("Host", "intranet.example"), ("Proxy-Connection", "keep-alive")],
                  200, [("Server", "nginx"), ("Content-Length", "2")]),
        har_entry(1, u + "b", [("Host", "intranet.example")], 200,
                  [("Server", "nginx"), ("Content-Length", "2"),
                   ("Keep-Alive", "timeout=5, max=100")]),
        har_entry(2, u + "c", [("Host", "intranet.example"), ("Connection", "Authorization")],
                  200, [("Server", "nginx"), ("Content-Length", "2")]),
        har_entry(3, u + "d", [("Host", "intranet.example")], 200,
                  [("Server", "nginx"), ("Content-Length", "2")]),
    ])
    ids, doc = findings(har)
    assert ids == ["hop-by-hop-misuse"]
    f = doc["findings"][0]
    assert doc["capture"]["from_har"] is True and doc["capture"]["source"] == "har"
    assert (f["count"], f["unit"], f["confidence"]) == (3, "exchanges", "certain")
    assert f["examples"]["exchanges"] == [1, 2, 3]
    assert "Proxy-Connection" in f["what"] and "Keep-Alive" in f["what"]
    assert "(Authorization)" in f["what"]
    assert f["impact"] == {"ms": 0.0, "handshakes": 0, "connections": 0}
    # a FILTER that takes only the clean exchange: no finding
    assert findings(har, "~u /d$")[0] == []
    # Keep-Alive declared hop-by-hop (Connection: keep-alive), as a browser sends it and
    # Apache httpd answers it on HTTP/1.1: harmless
    declared = write_har(tmp_path / "declared.har", [
        har_entry(0, u, [("Host", "intranet.example"), ("Connection", "keep-alive")], 200,
                  [("Server", "Apache/2.4.57 (Debian)"), ("Keep-Alive", "timeout=5, max=100"),
                   ("Connection", "Keep-Alive"), ("Content-Length", "2")])])
    assert findings(declared)[0] == []
    # the same head on HTTP/1.0 is keep-alive done right
    har10 = write_har(tmp_path / "ka10.har", [
        har_entry(0, u, [("Host", "intranet.example"), ("Connection", "keep-alive")], 200,
                  [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
                   ("Content-Length", "2")], http="HTTP/1.0")])
    assert findings(har10)[0] == []


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_proxy_connection_counts_only_where_it_reaches_the_server(shunt, lab_origin, tmp_path,
                                                                  mode):
    """curl sends Proxy-Connection to a forward proxy; shunt removes it (in both modes), so
    no server saw it: no finding, although the capture shows the client sent it. (A HAR of
    direct traffic, where the server got it, is misuse: the HAR test above.)"""
    o = lab_origin("-q")
    cap = tmp_path / "pc.db"
    if mode == "forward":
        px = shunt("--capture", cap)
        args = ["-x", f"http://127.0.0.1:{px.port}", f"http://127.0.0.1:{o.port}/a"]
    else:
        px = shunt("--capture", cap, "--reverse", f"http://127.0.0.1:{o.port}")
        args = [f"http://127.0.0.1:{px.port}/a"]
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--noproxy", "",
                        "-H", "Proxy-Connection: keep-alive"] + args,
                       capture_output=True, timeout=peers.WAIT)
    assert p.returncode == 0, p.stderr
    assert px.stop() == []
    with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as db:
        got, sent = db.execute("SELECT instr(req_head, 'Proxy-Connection:') > 0, "
                               "instr(req_head_sent, 'Proxy-Connection:') > 0 "
                               "FROM exchanges").fetchone()
    assert (got, sent) == (1, 0)
    assert findings(cap)[0] == []


def test_har_with_absurd_timings_is_read_without_overflow(tmp_path):
    """Hostile timings (285 years each, over a thousand 401 legs) must not overflow the sums
    of the checks: the importer caps a phase at one day."""
    u = "http://intranet.example/"
    entries = []
    for i in range(1100):
        e = har_entry(i % 60, u + str(i), [("Host", "intranet.example")], 401,
                      [("WWW-Authenticate", "NTLM"), ("Content-Length", "0")], conn=str(i + 1))
        e["time"] = 9e12
        e["timings"] = {"send": 1, "wait": 9e12, "receive": 1}
        entries.append(e)
    rc, out, err = diagnose(write_har(tmp_path / "absurd.har", entries), "--json")
    assert rc in (0, 1), err
    for f in json.loads(out)["findings"]:
        assert f["impact"]["ms"] >= 0, f


def test_filter_limits_the_exchanges(record):
    path, _ = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 6])
    ids, doc = findings(path, "~c 404")
    assert ids == [] and doc["filter"] == "~c 404" and doc["selected_exchanges"] == 0
    ids, doc = findings(path, "~c 200")
    # the handshakes start on the 401s, which this filter leaves out: the closes after the
    # 200s remain, the storm does not
    assert ids == ["wininet-auth-close"]
    assert doc["selected_exchanges"] == 6 and doc["capture"]["exchanges"] == 12


# ----------------------------------------------------------------------------- shape, input


def test_json_shape(record):
    path, _ = record(["--auth", "negotiate", "--no-server-header"],
                     ["--policy", "wininet", "--requests", 3])
    _, doc = findings(path)
    assert list(doc) == ["capture", "filter", "selected_exchanges", "checks", "findings"]
    assert list(doc["capture"]) == ["file", "source", "from_har", "connections", "exchanges",
                                    "incomplete"]
    assert [c["id"] for c in doc["checks"]] == CHECKS
    assert all(c["title"] for c in doc["checks"])
    f = doc["findings"][0]
    assert list(f) == ["rank", "id", "title", "confidence", "count", "unit", "what", "examples",
                       "impact", "explained_by", "why", "fix", "proof"]
    assert list(f["impact"]) == ["ms", "handshakes", "connections"]
    assert isinstance(f["impact"]["ms"], float)


def test_bad_input_is_status_2_with_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all, not even close" * 10)
    bad_har = tmp_path / "bad.har"
    bad_har.write_text('{"log": {"entries": [')
    cases = [
        ([tmp_path / "missing.db"], "missing.db: No such file or directory"),
        ([junk], "not a shunt capture"),
        ([bad_har], "bad.har: "),
        ([tmp_path / "missing.db", "~c ("], "filter: column"),
        (["--bogus"], "unknown option"),
    ]
    for args, msg in cases:
        rc, out, err = diagnose(*args)
        assert rc == 2, (args, rc, out, err)
        assert out == "" and msg in err and err.count("\n") == 1, (args, err)
        assert err.startswith("shunt diagnose: ")


def test_help_lists_every_check():
    rc, out, _ = diagnose("--help")
    assert rc == 0
    for c in CHECKS:
        assert f"  {c} " in out


def test_help_lists_the_filter_options_it_accepts(record):
    # Review of issue 11, finding 7: diagnose takes the filter options of sessions (the
    # shared parser, shunt_capture_filter_arg()), and its help says so
    rc, out, _ = diagnose("--help")
    assert rc == 0
    assert "--host H[:PORT]" in out and "--changed" in out
    assert {"--host", "--status", "--conn", "--changed", "--json"} <= options_of("diagnose")
    path, _ = record([], ["--requests", 2])
    port = sqlite3.connect(path).execute("SELECT url FROM exchanges").fetchone()[0]
    port = port.split("/")[2].split(":")[1]
    for args in (["--changed"], ["--host", f"127.0.0.1:{port}"]):
        rc, out, err = diagnose(path, *args)
        assert rc == 0 and "no finding" in out, (args, err)


def test_help_aligns_the_checks_within_80_columns(tmp_path):
    rc, out, _ = diagnose("--help")
    assert rc == 0
    lines = out.splitlines()
    assert max(len(l) for l in lines) <= 80, out
    # the titles start in one column, two spaces after the longest id, and wrap into it
    col = 2 + max(len(c) for c in CHECKS) + 2
    rows = lines[lines.index("checks:") + 1:lines.index("options:") - 1]
    titles = []
    for l in rows:
        if l[:col].strip():
            assert l[:2] == "  " and l[col - 2:col] == "  " and l[col] != " ", (l, out)
            titles.append([l[2:col].strip(), l[col:]])
        else:
            assert l[col] != " ", (l, out)
            titles[-1][1] += " " + l[col:]
    # the JSON has the same titles, unwrapped
    _, doc = findings(write_har(tmp_path / "empty.har", []))
    assert titles == [[c["id"], c["title"]] for c in doc["checks"]]


# ----------------------------------------------------------------------------- the demo


@pytest.mark.deadline(90)
def test_demo_capture_first_finding_is_wininet_auth_close(tmp_path):
    p = subprocess.run([peers.SHUNT_BIN, "lab", "demo", "--dir", str(tmp_path / "demo"),
                        "--requests", "20"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    ids, doc = findings(tmp_path / "demo" / "demo.db")
    assert ids[0] == "wininet-auth-close", ids
    assert "server-closes-keepalive" not in ids and "auth-connection-switch" not in ids
    # 20 closes, each followed by a new connection (the last by the fixed run's)
    assert doc["findings"][0]["count"] == 20
