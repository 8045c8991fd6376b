"""`shunt lab client` against `shunt lab origin` (and scripted origins for framing and
failures): what each keep-alive policy pays in connections and handshakes with each
authentication scheme, with and without a Server header, directly and through `shunt proxy`;
WinINet's graceful close on the wire (tshark); handshakes split over connections; failures
counted, never hung on; bad usage.

The counts come from the client's --json summary (docs/lab-client.md)."""
import json
import os
import re
import socket
import subprocess
import threading

import pytest

import peers
from peers import reply_with, response, teardown_flags

N = 10  # requests of the policy table


def client(*args, timeout=peers.WAIT):
    """Runs `shunt lab client --json ARGS`; returns (exit status, summary or None, stderr).
    A sanitizer report or a crash fails the test."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--json"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode >= 0, f"client killed by signal {-p.returncode}: {p.stderr}"
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    summary = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, summary, p.stderr


@pytest.fixture
def lab(lab_origin):
    """A factory: lab(*args) starts a quiet `shunt lab origin -q ARGS` (.port)."""
    return lambda *args: lab_origin("-q", *args)


def server_args(server):
    return ["--no-server-header"] if server is None else ["--server-header", server]


def expected(policy, auth, server, n=N):
    """(connections, handshakes, closed by the client) the policy must give for <n> requests."""
    bound = auth in ("negotiate", "ntlm")
    per_worker = 0 if auth == "none" else 1
    if policy == "http10":
        # One connection per request; the first challenge comes on a connection the server
        # closes (HTTP/1.0), so the first request pays one more. The final leg asks nothing
        # (HTTP/1.0 without keep-alive): the server ends every connection.
        return (n + per_worker, n if bound else per_worker, 0)
    old = server is None or server in ("Microsoft-IIS/1.0", "Microsoft-IIS/2.0",
                                       "Microsoft-IIS/3.0")
    if policy == "wininet" and bound and old:
        return (n, n, n)  # the story: a new connection and a new handshake every time
    return (1, per_worker, 0)


CASES = [
    (policy, auth, server)
    for policy in ("keepalive", "http10", "wininet")
    for auth in ("negotiate", "ntlm", "none")
    for server in (None, "Microsoft-IIS/6.0")
] + [
    ("wininet", "negotiate", "Microsoft-IIS/2.0"),
    ("wininet", "ntlm", "Microsoft-IIS/3.0"),
    ("wininet", "negotiate", "Microsoft-IIS/7.5"),
    ("wininet", "basic", None),
    ("keepalive", "basic", None),
    ("http10", "basic", "Microsoft-IIS/6.0"),
]


@pytest.mark.parametrize("via", ["direct", "proxy"])
@pytest.mark.parametrize("policy,auth,server", CASES)
def test_policy_pays_connections_and_handshakes(lab, shunt, via, policy, auth, server):
    o = lab("--auth", auth, *server_args(server))
    args = ["--policy", policy, "--requests", N]
    if via == "proxy":
        args += ["--proxy", f"127.0.0.1:{shunt().port}"]
    rc, s, err = client(*args, f"http://127.0.0.1:{o.port}/", "-v")
    assert rc == 0, err
    conns, handshakes, by_client = expected(policy, auth, server)
    got = (s["connections_opened"], s["handshakes"], s["closed_by_client"])
    assert got == (conns, handshakes, by_client), (s, err)
    assert (s["requests"], s["ok"], s["failed"], s["statuses"]) == (N, N, 0, {"200": N})
    assert s["auth_failures"] == 0
    assert s["scheme"] == {"negotiate": "Negotiate", "ntlm": "NTLM", "basic": "Basic",
                           "none": None}[auth]
    closed = s["closed_by_client"] + s["closed_by_server"] + s["open_at_end"]
    assert closed + s["closed_on_error"] == s["connections_opened"], s
    assert s["closed_on_error"] == 0, (s, err)
    # -v: one line per request, each naming its local port
    lines = [l for l in err.splitlines() if re.match(r"shunt lab client: w0 :\d+ GET ", l)]
    assert len(lines) == N, err


def test_text_summary(lab):
    o = lab("--auth", "negotiate", "--no-server-header")
    url = f"http://127.0.0.1:{o.port}/"
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--policy", "wininet", "--requests", "5",
                        url], capture_output=True, text=True, timeout=peers.WAIT)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"shunt lab client: policy wininet, 5 requests to {url} (direct)"
    assert re.fullmatch(r"  requests +5 \(5 ok, 0 failed\) +statuses 200:5", lines[1]), lines
    assert re.fullmatch(r"  connections +5 opened; closed by the client 5, by the server 0",
                        lines[2]), lines
    assert re.fullmatch(r"  handshakes +5 \(Negotiate\)", lines[3]), lines
    assert re.fullmatch(r"  time +[\d.]+ s total, [\d.]+ ms per request", lines[4]), lines


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_wininet_closes_with_fin_never_rst(lab, shunt, tshark, via):
    o = lab("--auth", "ntlm", "--no-server-header")
    args = ["--policy", "wininet", "--requests", "3", f"http://127.0.0.1:{o.port}/"]
    port = o.port
    if via == "proxy":
        port = shunt().port
        args += ["--proxy", f"127.0.0.1:{port}"]
    cap = tshark(port)
    rc, s, err = client(*args, "-v")
    assert rc == 0, err
    assert s["closed_by_client"] == 3
    pkts = cap.packets()
    ports = sorted({p["src"] for p in pkts if p["dst"] == port and p["syn"]})
    assert len(ports) == 3, pkts
    for cp in ports:
        assert teardown_flags(pkts, cp, port) == ["FIN"], pkts  # the client's graceful close
        assert "RST" not in teardown_flags(pkts, port, cp), pkts
        # the client's FIN comes first: it closed, after reading the whole response
        fins = [p for p in pkts if p["fin"] and cp in (p["src"], p["dst"])]
        assert fins[0]["src"] == cp, pkts


@pytest.mark.parametrize("auth", ["negotiate", "ntlm"])
def test_split_handshake_fails_for_connection_bound_schemes(lab, auth):
    o = lab("--auth", auth)
    rc, s, err = client("--split-handshake", "--requests", 3, f"http://127.0.0.1:{o.port}/")
    assert rc == 1, err
    assert (s["ok"], s["failed"], s["auth_failures"], s["statuses"]) == (0, 3, 3, {"401": 3}), s
    assert s["failures"] == {"auth": 3}


def test_split_handshake_works_for_basic(lab):
    o = lab("--auth", "basic")
    rc, s, err = client("--split-handshake", "--requests", 3, f"http://127.0.0.1:{o.port}/")
    assert rc == 0, err
    assert (s["ok"], s["auth_failures"], s["handshakes"]) == (3, 0, 1), s
    assert s["connections_opened"] == 4  # the challenge's, then one per request


def test_concurrency_and_round_robin(lab):
    a = lab("--auth", "ntlm")
    b = lab("--auth", "none")
    rc, s, err = client("--requests", 40, "--concurrency", 4, f"http://127.0.0.1:{a.port}/",
                        f"http://127.0.0.1:{b.port}/bytes/100", "-v")
    assert rc == 0, err
    assert (s["requests"], s["ok"]) == (40, 40)
    # a worker's connection serves one origin: switching origin means a new connection,
    # and a new handshake with the NTLM one
    assert s["handshakes"] >= 1 and s["connections_opened"] >= 4
    assert len(re.findall(rf":{b.port}/bytes/100 -> 200", err)) == 20


class Relay:
    """A TCP relay on 127.0.0.1:0 to 127.0.0.1:<target> that records, for each connection in
    the order accepted, the bytes the client sent: the requests exactly as on the wire."""

    def __init__(self, target):
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            rec = bytearray()
            self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec), daemon=True).start()

    @staticmethod
    def _pump(a, b, rec):
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                d = b""
            if not d:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if rec is not None:
                rec += d
            b.sendall(d)

    def _serve(self, c, rec):
        u = socket.create_connection(("127.0.0.1", self.target))
        back = threading.Thread(target=self._pump, args=(u, c, None), daemon=True)
        back.start()
        self._pump(c, u, rec)
        back.join(peers.WAIT)
        c.close()
        u.close()

    def requests(self):
        """Each connection's request heads, as (request line, {field name lower: value})."""
        out = []
        for rec in self.conns:
            heads = [h for h in bytes(rec).split(b"\r\n\r\n") if h]
            out.append([(h.split(b"\r\n")[0].decode(),
                         {l.split(b":", 1)[0].decode().lower(): l.split(b":", 1)[1].strip().decode()
                          for l in h.split(b"\r\n")[1:]}) for h in heads])
        return out

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("auth", ["none", "ntlm", "negotiate"])
def test_http10_sends_what_its_help_says(lab, auth):
    # Issue 11: --policy http10 sends HTTP/1.0 without keep-alive. Only the legs of an NTLM or
    # Negotiate handshake that must get a challenge on the same connection (once the server
    # asked for one) carry Connection: Keep-Alive; the final leg, and so the request that
    # ends each connection, asks nothing. Recorded on the wire by a relay.
    o = lab("--auth", auth, "--no-server-header")
    relay = Relay(o.port)
    try:
        rc, s, err = client("--policy", "http10", "--requests", 3,
                            f"http://127.0.0.1:{relay.port}/")
    finally:
        relay.close()
    assert rc == 0 and s["ok"] == 3, err
    conns = relay.requests()
    assert len(conns) == s["connections_opened"]
    for reqs in conns:
        assert reqs, conns
        for line, fields in reqs:
            assert line.endswith(" HTTP/1.0"), line
            assert fields.get("connection", "Keep-Alive") == "Keep-Alive", fields
            legs_to_come = fields.get("authorization", "").startswith("NTLM TlRMTVNTUAAB") or \
                ("authorization" not in fields and s["handshakes"] > 0)
            # keep-alive asked only by a leg that gets a challenge to answer on it
            if "connection" in fields:
                assert legs_to_come, (line, fields)
        # the request that ends the connection never asked to keep it
        assert "connection" not in reqs[-1][1], reqs
    if auth == "none":
        assert all(len(r) == 1 and "connection" not in r[0][1] for r in conns), conns
    else:
        # after the first challenge, each request's handshake ran on one connection
        assert any(len(r) > 1 for r in conns), conns


def test_http10_origin_with_keepalive_policy(lab):
    o = lab("--auth", "none", "--http10")
    rc, s, err = client("--requests", 5, f"http://127.0.0.1:{o.port}/")
    assert rc == 0, err
    assert s["ok"] == 5
    assert s["connections_opened"] in (1, 5)  # kept only when the origin says keep-alive


# ----------------------------------------------------------------------------- framing


@pytest.mark.parametrize("reply,method", [
    (response(body=b"x" * 100000), "GET"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n"
     b"T: 1\r\n\r\n", "GET"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
     response(body=b"ok"), "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"),
    (response(status=b"204 No Content", cl=False), "GET"),
])
def test_framing_keeps_the_connection(origin, reply, method):
    origin.handler = reply_with(reply)
    rc, s, err = client("--requests", 5, "--method", method, origin.url + "/")
    assert rc == 0, err
    assert (s["ok"], s["connections_opened"], s["closed_by_server"]) == (5, 1, 0), (s, err)


def test_close_delimited_body(origin):
    def reply(conn, req):
        conn.send(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 5000)
        conn.close()

    origin.handler = reply_with(reply)
    rc, s, err = client("--requests", 3, origin.url + "/")
    assert rc == 0, err
    assert (s["ok"], s["connections_opened"], s["closed_by_server"]) == (3, 3, 3), s


def test_server_closing_between_requests_is_survived(origin):
    def reply(conn, req):
        conn.send(response(body=b"ok"))  # says nothing of closing, then closes
        conn.close()

    origin.handler = reply_with(reply)
    rc, s, err = client("--requests", 4, "--think", 50, origin.url + "/", "-v")
    assert rc == 0, err
    assert (s["ok"], s["connections_opened"]) == (4, 4), (s, err)
    assert s["closed_by_server"] >= 3, s


# ----------------------------------------------------------------------------- failures


def test_connection_refused_is_counted(lab):
    rc, s, err = client("--requests", 3, f"http://127.0.0.1:{peers.free_port()}/")
    assert rc == 1
    assert (s["ok"], s["failed"], s["failures"]) == (0, 3, {"connect": 3}), s


def test_timeout_is_counted(origin):
    done = threading.Event()

    def hold(conn):
        conn.recv_request()
        done.wait(peers.WAIT)

    origin.handler = hold
    try:
        rc, s, err = client("--requests", 1, "--timeout", "0.5", origin.url + "/")
    finally:
        done.set()
    assert rc == 1
    assert s["failures"] == {"timeout": 1}, s


def test_reset_and_bad_response_are_counted(origin):
    replies = iter([b"not http at all\r\n\r\n", None])

    def reply(conn, req):
        r = next(replies, None)
        if r is None:
            conn.reset()
            return None
        return r

    origin.handler = reply_with(reply)
    rc, s, err = client("--requests", 2, origin.url + "/", "-v")
    assert rc == 1, err
    assert s["failed"] == 2
    assert s["failures"].get("bad_response") == 1, (s, err)
    assert s["failures"].get("reset", 0) + s["failures"].get("closed", 0) == 1, (s, err)


# ----------------------------------------------------------------------------- usage


@pytest.mark.parametrize("args,message", [
    (["--policy", "ie6", "http://127.0.0.1:1/"], r"unknown policy 'ie6'"),
    (["https://127.0.0.1:1/"], r"https:// is not supported"),
    (["ftp://x/"], r"not a URL"),
    (["127.0.0.1:80"], r"not a URL"),
    (["http://127.0.0.1:99999/"], r"bad host or port"),
    (["--requests", "0", "http://127.0.0.1:1/"], r"--requests '0'"),
    (["--requests", "ten", "http://127.0.0.1:1/"], r"--requests 'ten'"),
    (["--concurrency", "-1", "http://127.0.0.1:1/"], r"--concurrency '-1'"),
    (["--proxy", "nowhere", "http://127.0.0.1:1/"], r"--proxy 'nowhere'"),
    (["--frobnicate", "http://127.0.0.1:1/"], r"unknown option"),
    ([], r"no URL"),
])
def test_bad_usage_exits_2(args, message):
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client"] + args, capture_output=True, text=True,
                       timeout=peers.WAIT)
    assert p.returncode == 2, p
    assert re.search(message, p.stderr), p.stderr
    assert p.stdout == ""


def test_help():
    p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--help"], capture_output=True,
                       text=True, timeout=peers.WAIT)
    assert p.returncode == 0
    assert "--policy" in p.stdout and "wininet" in p.stdout
