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
