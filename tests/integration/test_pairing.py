"""Keep-alive and pairing: a client connection keeps one upstream connection (per origin)
for its life, never shared with another client connection, never retried; pipelined
requests are answered in order."""
import peers
from peers import OK, curl, get, origin_form, reply_with, response


def _echo_path(conn, req):
    return response(body=req.start.split(b" ")[1])


def test_pipelined_requests_get_responses_in_order(shunt, origin):
    origin.handler = reply_with(_echo_path)
    px = shunt()
    a = get(origin.host, "/first")
    b = get(origin.host, "/second", b"Content-Length: 4\r\n", method=b"POST", body=b"body")
    c_ = get(origin.host, "/third")
    with px.client() as c:
        c.send(a + b + c_)  # one send
        got = [c.response().raw for _ in range(3)]
    assert got == [response(body=b"/first"), response(body=b"/second"), response(body=b"/third")]
    (conn,) = origin.wait_conns(1)
    origin.wait_requests(3)
    assert bytes(conn.received) == origin_form(a) + origin_form(b) + origin_form(c_)


def test_curl_reuses_its_connection_and_origin_sees_one(shunt, origin):
    origin.handler = reply_with(_echo_path)
    px = shunt()
    r = curl("-v", "-x", px.proxy_url, origin.url + "/one", origin.url + "/two", origin.url + "/three")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"/one/two/three"
    assert b"Re-using existing connection" in r.stderr, r.stderr.decode()
    origin.wait_requests(3)
    assert len(origin.conns) == 1
    assert [m.start for m in origin.conns[0].requests] == [
        b"GET /one HTTP/1.1", b"GET /two HTTP/1.1", b"GET /three HTTP/1.1"]


def test_curl_keepalive_to_nginx_through_proxy(shunt, nginx):
    px = shunt("-v")
    r = curl("-v", "-x", px.proxy_url, nginx.url + "/small", nginx.url + "/files/small.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello from nginx\nsmall file\n"
    assert b"Re-using existing connection" in r.stderr
    lines = px.wait_stderr(r"conn=(\d+) client=(\d+) upstream=(\d+) idx=", count=2)
    assert len({m.groups() for m in lines}) == 1, "both exchanges on one client and one upstream connection"


def test_each_client_connection_gets_its_own_upstream_connection(shunt, origin):
    origin.handler = reply_with(_echo_path)
    px = shunt()
    with px.client() as a, px.client() as b:
        assert a.exchange(get(origin.host, "/a1")).body == b"/a1"
        # a stays open and idle; b must not borrow its upstream connection
        assert b.exchange(get(origin.host, "/b1")).body == b"/b1"
        assert a.exchange(get(origin.host, "/a2")).body == b"/a2"
        assert b.exchange(get(origin.host, "/b2")).body == b"/b2"
    ca, cb = origin.wait_conns(2)
    assert len(origin.conns) == 2 and ca.peer_port != cb.peer_port
    assert [m.start.split(b" ")[1] for m in ca.requests] == [b"/a1", b"/a2"]
    assert [m.start.split(b" ")[1] for m in cb.requests] == [b"/b1", b"/b2"]


def test_upstream_connection_is_not_handed_to_a_later_client(shunt, origin):
    px = shunt()
    with px.client() as a:
        assert a.exchange(get(origin.host, "/")).raw == OK
    with px.client() as b:
        assert b.exchange(get(origin.host, "/")).raw == OK
    c1, c2 = origin.wait_conns(2)
    assert c1.peer_port != c2.peer_port
    assert len(c1.requests) == 1 and len(c2.requests) == 1


def ntlm_like(conn):
    """A connection-bound handshake, like NTLM: 401, then a challenge on this connection,
    then 200 only if the answer to that challenge comes back on the same connection."""
    challenge = b"challenge-%d" % conn.peer_port
    while True:
        req = conn.recv_request()
        if req is None:
            return
        auth = req.get("authorization")
        if auth == b"NTLM negotiate":
            conn.state["challenge"] = challenge
            conn.send(response(b"401 Unauthorized", [b"WWW-Authenticate: NTLM " + challenge]))
        elif auth is not None and conn.state.get("challenge") and auth == b"NTLM answer-" + conn.state["challenge"]:
            conn.send(response(body=b"welcome on :%d" % conn.peer_port))
        else:
            conn.send(response(b"401 Unauthorized", [b"WWW-Authenticate: NTLM"]))


def test_connection_bound_auth_with_two_interleaved_clients(shunt, origin):
    origin.handler = ntlm_like
    px = shunt()
    with px.client() as a, px.client() as b:
        clients = {"a": a, "b": b}
        for c in clients.values():
            r = c.exchange(get(origin.host, "/"))
            assert r.status == 401 and r.get("www-authenticate") == b"NTLM"
        challenges = {}
        for name, c in clients.items():
            r = c.exchange(get(origin.host, "/", b"Authorization: NTLM negotiate\r\n"))
            assert r.status == 401
            challenges[name] = r.get("www-authenticate").split(b" ")[1]
        assert challenges["a"] != challenges["b"]
        for name, c in clients.items():
            r = c.exchange(get(origin.host, "/", b"Authorization: NTLM answer-" + challenges[name] + b"\r\n"))
            assert r.status == 200, f"client {name}: the answer reached another upstream connection: {r}"
    conns = origin.wait_conns(2)
    assert len(origin.conns) == 2
    assert sorted(challenges.values()) == sorted(b"challenge-%d" % c.peer_port for c in conns)
    assert all(len(c.requests) == 3 for c in conns)


def test_request_is_never_retried_when_origin_closes_without_answer(shunt, origin):
    def read_then_close(conn):
        conn.recv_request()
        conn.close()

    origin.handler = read_then_close
    px = shunt()
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/once", b"Content-Length: 3\r\n", method=b"POST", body=b"abc"))
        assert resp.status == 502, resp
    assert len(origin.conns) == 1
    assert len(origin.conns[0].requests) == 1


def test_many_concurrent_clients_each_keep_their_own_upstream_connection(shunt, origin):
    import threading

    origin.handler = reply_with(lambda conn, req: response(body=b"%d" % conn.peer_port))
    px = shunt("--workers", "2")
    n, rounds = 30, 4
    clients = [px.client() for _ in range(n)]
    seen = [[] for _ in range(n)]
    errors = []

    def run(i):
        try:
            for r in range(rounds):
                seen[i].append(clients[i].exchange(get(origin.host, f"/c{i}/r{r}")).body)
        except Exception as e:  # reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(peers.WAIT)
    for c in clients:
        c.close()
    assert errors == []
    assert all(len(set(s)) == 1 and len(s) == rounds for s in seen), seen
    ports = [s[0] for s in seen]
    assert len(set(ports)) == n, "two client connections shared an upstream connection"
    assert len(origin.conns) == n
    for conn in origin.conns:  # each upstream connection carried one client's requests only
        owners = {m.start.split(b"/")[1] for m in conn.requests}
        assert len(owners) == 1 and len(conn.requests) == rounds, conn.requests


def test_one_client_connection_to_two_origins_keeps_one_upstream_connection_per_origin(shunt, origins):
    a = origins(reply_with(lambda conn, req: response(body=b"A%d" % conn.peer_port)))
    b = origins(reply_with(lambda conn, req: response(body=b"B%d" % conn.peer_port)))
    px = shunt()
    with px.client() as c:
        got = [c.exchange(get(o.host, "/")).body for o in (a, b, a, b)]
    assert got[0] == got[2] and got[1] == got[3]
    assert len(a.conns) == 1 and len(b.conns) == 1
    assert len(a.conns[0].requests) == 2 and len(b.conns[0].requests) == 2


def test_two_hundred_pipelined_requests_are_answered_in_order(shunt, origin):
    origin.handler = reply_with(_echo_path)
    px = shunt()
    reqs = [get(origin.host, f"/p{i}") for i in range(200)]
    with px.client() as c:
        c.send(b"".join(reqs))
        got = [c.response().body for _ in reqs]
    assert got == [f"/p{i}".encode() for i in range(200)]
    assert len(origin.conns) == 1
