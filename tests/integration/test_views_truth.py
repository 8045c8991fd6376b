"""test_views_truth.py - issue 11: `shunt sessions`, `show` and `connections` tell what the
capture holds, on captures that `shunt proxy --capture` made in the test: a request still
waiting (pending), shunt's own answers (a rule's, the parser's 400, an unreachable upstream's
502, a CONNECT's 200) with the response the client received, C apart from the routine
forward-proxy rewrites, and the port beside the host."""
import json
import os
import subprocess
import threading

import pytest

import peers
from peers import get

ENV = dict(os.environ, TZ="UTC", COLUMNS="200")
ENV.pop("PAGER", None)


def view(*args):
    """Runs a view; returns its stdout (it must exit 0 and print nothing on stderr)."""
    p = subprocess.run([peers.SHUNT_BIN, *[str(a) for a in args]], capture_output=True,
                       env=ENV, timeout=peers.WAIT * 3)
    assert (p.returncode, p.stderr.decode()) == (0, ""), (args, p.returncode, p.stderr)
    return p.stdout.decode()


def table(out):
    """The rows of a table view, each a dict from the header's names to the cells."""
    lines = out.splitlines()
    names = lines[0].split()
    return [dict(zip(names, l.split())) for l in lines[1:]]


def exchanges(path, *args):
    return json.loads(view("sessions", path, "--json", *args))["exchanges"]


def recorded(path, n, *args):
    """Waits until the capture holds <n> exchanges (the store thread writes every 20 ms)."""
    return peers.wait_for(lambda: len(exchanges(path, *args)) >= n and exchanges(path, *args),
                          what=f"{n} exchange(s) in {path}")


@pytest.fixture
def silent_origin(origins):
    """An origin that accepts and reads each request and never answers (until the test ends:
    then it lets go of its thread)."""
    done = threading.Event()

    def handler(conn):
        if conn.recv_request() is not None:
            done.wait(peers.WAIT * 3)

    o = origins(handler)
    yield o
    done.set()


# ----------------------------------------------------------------------------- pending


def test_a_request_waiting_for_its_response_shows_pending_in_every_view(shunt, silent_origin,
                                                                        tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", path)
    with px.client() as c:
        c.send(get(silent_origin.host, "/hang"))
        silent_origin.wait_requests(1)
        client_port = c.sock.getsockname()[1]
        rows = recorded(path, 1)
        # sessions: no status, the status column says it waits, the flag P
        row = table(view("sessions", path))[0]
        assert (row["path"], row["status"], row["flags"]) == ("/hang", "wait", "rP"), row
        assert row["ms"].endswith("+")
        x = rows[0]
        assert (x["status"], x["pending"], x["duration_us"], x["flags"]) == (None, True, None, "rP")
        assert x["waiting_us"] >= 0
        # ~q ("a request with no response") takes it; ~s does not
        assert [e["id"] for e in exchanges(path, "~q")] == [x["id"]]
        assert exchanges(path, "~s") == []
        # show: the request, no response yet, waiting since when and for how long so far
        out = view("show", path, x["id"])
        assert out.startswith(f"exchange {x['id']}: GET http://{silent_origin.host}/hang -> "
                              "no response yet  [rP]\n"), out
        assert "not ended yet; " in out
        assert "\nrequest head (as received; \"- \" removed, \"+ \" added when sent upstream):\n" \
               f"- GET http://{silent_origin.host}/hang HTTP/1.1\n+ GET /hang HTTP/1.1\n" in out
        assert "\nresponse: none yet; waiting since 20" in out and " so far)\n" in out
        doc = json.loads(view("show", path, x["id"], "--json"))["exchange"]
        assert (doc["pending"], doc["status"], doc["duration_us"]) == (True, None, None)
        # connections: the connection is open, with its exchange counted
        conn = table(view("connections", path))[0]
        assert (conn["cport"], conn["exch"], conn["lifetime"], conn["closer"], conn["how"]) == (
            str(client_port), "1", "-", "open", "-")
        k = json.loads(view("connections", path, "--json"))["connections"][0]
        assert (k["open"], k["exchanges"], k["closed_us"]) == (True, 1, None)


def test_a_request_held_by_a_rule_is_pending_and_not_sent_yet(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    rules = tmp_path / "hold.lua"
    rules.write_text('function on_request(s) if s.request.url:find("/held") then '
                     's:delay(4000) end end\n')
    px = shunt("--capture", path, "--rules", rules)
    with px.client() as c:
        c.send(get(origin.host, "/held"))
        x = recorded(path, 1)[0]
        out = view("show", path, x["id"])
        assert out.splitlines()[0].endswith(" -> no response yet  [CP]"), out
        assert "\nrequest head (as received; not sent upstream yet):\n" in out
        assert "\nchanges:\n  request   hold the request 4000 ms  (by hold.lua)\n" in out
        assert "\nresponse: none yet; waiting since " in out
        assert c.response().status == 200
    recorded(path, 1, "~s")  # the same row, completed at the store thread's next batch
    assert origin.conns and table(view("sessions", path, "~s"))[0]["flags"] == "C"


# ----------------------------------------------------------------------------- C and r


def test_only_a_rule_makes_c_and_routine_rewrites_are_shown_apart(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", path, "--modify-headers", "/~u touched/X-Rule/1")
    with px.client() as c:
        c.exchange(get(origin.host, "/plain", b"Proxy-Connection: keep-alive\r\n"))
        c.exchange(get(origin.host, "/touched"))
    recorded(path, 2, "~s")
    rows = table(view("sessions", path))
    assert [(r["path"], r["flags"]) for r in rows] == [("/plain", "r"), ("/touched", "C")]
    # filtering for changed exchanges finds the one the rule touched, only
    assert [e["path"] for e in exchanges(path, "--changed")] == ["/touched"]
    assert table(view("connections", path, "--changed"))[0]["exch"] == "2"
    plain = view("show", path, "1")
    assert "  [r]\n" in plain.splitlines()[0] + "\n"
    assert "\nroutine forward-proxy rewrites:\n" in plain and "\nchanges:\n" not in plain
    assert "  request   remove Proxy-Connection\n" in plain
    touched = view("show", path, "2")
    assert touched.splitlines()[0].endswith("  [C]")
    changes = touched.split("\nchanges:\n")[1].split("\n\n")[0]
    assert "  request   set X-Rule: 1  (by --modify-headers #1)" in changes
    assert "origin-form" not in changes
    assert "  request   request line to origin-form\n" in \
        touched.split("\nroutine forward-proxy rewrites:\n")[1]
    doc = json.loads(view("show", path, "1", "--json"))["exchange"]
    assert doc["flags"] == "r" and all(ch["routine"] for ch in doc["changes"])


# ----------------------------------------------------------------------------- hosts


def test_two_origins_on_one_host_are_two_hosts(shunt, origins, tmp_path):
    path = tmp_path / "c.db"
    a, b = origins(), origins()
    px = shunt("--capture", path)
    with px.client() as c:
        c.exchange(get(a.host, "/a"))
        c.exchange(get(b.host, "/b"))
    with px.client() as c:  # a CONNECT's target is host:port too
        c.send(f"CONNECT {a.host} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode())
        assert c.r.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    recorded(path, 3)
    rows = table(view("sessions", path))
    assert [(r["method"], r["host"], r["path"]) for r in rows] == [
        ("GET", a.host, "/a"), ("GET", b.host, "/b"), ("CONNECT", a.host, a.host)]
    # the host column pasted into --host takes that origin alone; the bare host takes both
    assert [e["path"] for e in exchanges(path, "--host", b.host)] == ["/b"]
    assert [e["path"] for e in exchanges(path, "--host", "127.0.0.1", "~m get")] == ["/a", "/b"]
    assert [(e["host"], e["port"]) for e in exchanges(path)][:2] == [
        ("127.0.0.1", a.port), ("127.0.0.1", b.port)]


# ----------------------------------------------------------------------------- shunt's answers


def response_part(out):
    """What show prints from the response head on."""
    return out[out.index("\nresponse head "):]


def test_a_rules_answers_are_shown_as_the_client_received_them(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    canned = tmp_path / "canned.txt"
    canned.write_bytes(b"canned answer\n")
    local = tmp_path / "local.txt"
    local.write_bytes(b"local file\n")
    px = shunt("--capture", path, "--respond", f"|~u canned|203|{canned}",
               "--map-local", f"|/mapped|{local}")
    with px.client() as c:
        r1 = c.exchange(get(origin.host, "/canned"))
        r2 = c.exchange(get(origin.host, "/mapped"))
    assert (r1.status, r1.body, r2.status, r2.body) == (203, b"canned answer\n", 200,
                                                        b"local file\n")
    assert origin.conns == []
    rows = recorded(path, 2, "~s")
    for x, rule, resp in ((rows[0], "--respond #1", r1), (rows[1], "--map-local #1", r2)):
        out = view("show", path, x["id"])
        assert f"\nanswered by shunt: the rule \"{rule}\" (respond {resp.status} without the " \
               "server); the request was not sent upstream\n" in out, out
        assert ", answered by shunt (no upstream)\n" in out
        assert "\nrequest head (as received; not sent upstream: a rule answered it):\n" in out
        assert "unchanged" not in out.split("\nresponse head ")[0]
        # the response the client received, head and body
        head = resp.raw[:resp.raw.index(b"\r\n\r\n")].decode().split("\r\n")
        assert response_part(out).startswith(
            "\nresponse head (sent by shunt; no server sent one):\n" +
            "".join(f"  {l}\n" for l in head)), out
        assert out.endswith(f"response body: {len(resp.body)} bytes, text:\n"
                            f"  {resp.body.decode().rstrip()}\n")
        doc = json.loads(view("show", path, x["id"], "--json"))["exchange"]
        assert (doc["sent_upstream"], doc["shunt_answer"]["why"], doc["shunt_answer"]["rule"]) \
            == (False, "rule", rule)
    assert [(e["flags"], e["answered_by_shunt"]) for e in rows] == [("CS", True), ("CS", True)]


def test_an_unreachable_upstream_is_not_sent_upstream_unchanged(shunt, tmp_path):
    path = tmp_path / "c.db"
    dead = peers.free_port()
    px = shunt("--capture", path)
    req = get(f"127.0.0.1:{dead}", "/refused")
    with px.client() as c:
        r = c.exchange(req)
    assert r.status == 502
    x = recorded(path, 1)[0]
    out = view("show", path, x["id"])
    assert (f"\nanswered by shunt: the upstream was unreachable: cannot connect to "
            f"127.0.0.1:{dead}: connection refused (ECONNREFUSED); the request was not sent "
            "upstream\n") in out, out
    assert "\nerror: " not in out  # the line above quotes it
    assert "\nrequest head (as received; not sent upstream: the upstream was unreachable):\n" \
        in out
    assert "sent upstream unchanged" not in out
    assert response_part(out).startswith(
        "\nresponse head (sent by shunt; no server sent one):\n  HTTP/1.1 502 Bad Gateway\n")
    assert f"\nresponse body: {len(r.body)} bytes, text:\n  {r.body.decode().rstrip()}\n" in out
    assert (x["status"], x["flags"], x["host"], x["port"]) == (502, "ES", "127.0.0.1", dead)
    # the bytes show counts are those of the list view (req_bytes, bytes)
    assert f"; {x['req_bytes']} bytes from the client, {x['bytes']} bytes to it\n" in out
    assert x["bytes"] == len(r.raw)
    # the request reached shunt although it went no further: its bytes count
    assert x["req_bytes"] == len(req)


def test_a_request_the_parser_refused_says_why_and_where(shunt, tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", path)
    bad = b"GET http://x.test/ HTTP/1.1\r\nHost: x.test\r\nBad Header\r\n\r\n"
    with px.client() as c:
        c.send(bad)
        r = c.response()
    assert r.status == 400
    x = recorded(path, 1)[0]
    out = view("show", path, x["id"])
    at = bad.index(b"Bad Header") + 3  # the space: not a character of a field name
    assert ("\nanswered by shunt: its parser refused the request: invalid character in field "
            f"name (BAD_HEADER_NAME) at byte {at}; the request was not sent upstream\n") in out, out
    assert "\nrequest head (as received; not sent upstream: shunt's parser refused it):\n" in out
    assert "  Bad Header\n" in out and "unchanged" not in out.split("\nresponse head ")[0]
    assert response_part(out).startswith(
        "\nresponse head (sent by shunt; no server sent one):\n  HTTP/1.1 400 Bad Request\n")
    assert f"\nresponse body: {len(r.body)} bytes, text:\n  {r.body.decode().rstrip()}\n" in out
    assert f"; {len(bad)} bytes from the client, {len(r.raw)} bytes to it\n" in out
    assert (x["status"], x["flags"], x["answered_by_shunt"]) == (400, "ES", True)


def test_a_connect_is_answered_by_shunt_then_a_tunnel(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", path)
    with px.client() as c:
        c.send(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n".encode())
        head = c.r.read_until(b"\r\n\r\n")
    x = recorded(path, 1)[0]
    out = view("show", path, x["id"])
    assert (f"\nanswered by shunt: it connected to {origin.host} and answered the CONNECT "
            "itself, as a proxy does; the connection then became a tunnel\n") in out, out
    assert "\nrequest head (as received; not sent upstream: a CONNECT is answered by the " \
           "proxy):\n" in out
    lines = head.decode().split("\r\n")[:-2]
    assert response_part(out).startswith(
        "\nresponse head (sent by shunt; no server sent one):\n" +
        "".join(f"  {l}\n" for l in lines)), out
    assert (x["method"], x["flags"], x["answered_by_shunt"]) == ("CONNECT", "US", True)


def test_a_timeout_after_the_request_went_upstream_says_it_went(shunt, silent_origin, tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", path, "--response-timeout", "1")
    with px.client() as c:
        r = c.exchange(get(silent_origin.host, "/slow"))
    assert r.status == 504
    x = recorded(path, 1, "~s")[0]
    out = view("show", path, x["id"])
    lines = out.splitlines()
    # shunt answered, but not "without an upstream": the request went out and no answer came
    assert lines[1].endswith(", answered by shunt"), out
    assert f"\nanswered by shunt: {silent_origin.host} did not respond within 1 s\n" in out
    assert "\nrequest head (as received; \"- \" removed, \"+ \" added when sent upstream):\n" \
           f"- GET http://{silent_origin.host}/slow HTTP/1.1\n+ GET /slow HTTP/1.1\n" in out
    assert response_part(out).startswith(
        "\nresponse head (sent by shunt; no server sent one):\n  HTTP/1.1 504 Gateway Timeout\n")
    assert f"\nresponse body: {len(r.body)} bytes, text:\n  {r.body.decode().rstrip()}\n" in out
    assert x["flags"] == "rES"
