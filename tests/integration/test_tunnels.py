"""CONNECT and 101 Switching Protocols turn the pair into a byte tunnel: bytes pass
unchanged both ways, half-closes pass on."""
import asyncio

import peers
from peers import curl, echo_handler

PAYLOAD = bytes(range(256)) * 64 + b"GET / HTTP/1.1\r\n\r\n\x00\r\n\r\n"  # not HTTP: not parsed


def _connect(c, host):
    c.send(b"CONNECT " + host.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
    return c.response(method="CONNECT")


def test_connect_tunnel_to_nginx_tls_with_curl(shunt, nginx):
    px = shunt()
    r = curl("-k", "-v", "-x", px.proxy_url, nginx.tls_url + "/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello over tls\n"
    assert b"CONNECT 127.0.0.1:%d HTTP/1.1" % nginx.tls_port in r.stderr
    assert b"HTTP/1.1 200" in r.stderr


def test_connect_tunnel_is_byte_exact_both_ways(shunt, origin):
    origin.handler = echo_handler
    px = shunt()
    with px.client() as c:
        resp = _connect(c, origin.host)
        assert resp.status == 200, resp
        c.send(PAYLOAD)
        assert c.r.read_exact(len(PAYLOAD)) == PAYLOAD
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == PAYLOAD  # the CONNECT head itself never reaches the origin


def test_connect_tunnel_passes_client_half_close(shunt, origin):
    origin.handler = echo_handler  # on FIN: sends b"bye", then closes
    px = shunt()
    with px.client() as c:
        assert _connect(c, origin.host).status == 200
        c.send(PAYLOAD)
        c.shutdown_write()
        # after our FIN the tunnel still carries the echo and the origin's last words
        rest, how = c.wait_eof()
        assert rest == PAYLOAD + b"bye"
        assert how == "FIN"
    (conn,) = origin.wait_conns(1)
    assert conn.end in ("FIN", "closed")
    assert bytes(conn.received) == PAYLOAD


def test_connect_tunnel_passes_origin_half_close(shunt, origin):
    def speak_then_half_close(conn):
        conn.send(b"first words")
        conn.shutdown_write()
        conn.r.read_to_eof()  # keeps reading after its own FIN

    origin.handler = speak_then_half_close
    px = shunt()
    with px.client() as c:
        assert _connect(c, origin.host).status == 200
        assert c.r.read_exact(11) == b"first words"
        assert c.r.read_some() == b"" and c.r.eof == "FIN"  # the origin's FIN, mirrored
        c.send(b"still talking")  # our direction stays open
        c.shutdown_write()
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"
    assert bytes(conn.received) == b"still talking"


def test_connect_to_a_refused_port_gets_502(shunt):
    px = shunt()
    port = peers.free_port()
    with px.client() as c:
        resp = _connect(c, f"127.0.0.1:{port}")
        assert resp.status == 502, resp


def test_101_upgrade_switches_to_a_byte_tunnel(shunt, origin):
    switch = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw-echo\r\nConnection: Upgrade\r\n\r\n")

    def upgrade_then_echo(conn):
        req = conn.recv_request()
        assert req.get("upgrade") == b"raw-echo", req
        conn.send(switch)
        echo_handler(conn)

    origin.handler = upgrade_then_echo
    px = shunt()
    req = peers.get(origin.host, "/up", b"Connection: Upgrade\r\nUpgrade: raw-echo\r\n")
    with px.client() as c:
        resp = c.exchange(req)
        assert resp.raw == switch
        c.send(PAYLOAD)
        assert c.r.read_exact(len(PAYLOAD)) == PAYLOAD
        c.shutdown_write()
        assert c.wait_eof() == (b"bye", "FIN")
    (conn,) = origin.wait_conns(1)
    assert bytes(conn.received) == peers.origin_form(req) + PAYLOAD


def test_websocket_echo_through_reverse_proxy(shunt):
    try:
        import websockets
    except ImportError:
        raise peers.PeerError("python3-websockets is not installed: run `scripts/deps.sh check`")

    async def echo(ws, path=None):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            px = shunt("--reverse", f"http://127.0.0.1:{port}")
            async with websockets.connect(f"ws://127.0.0.1:{px.port}/chat", open_timeout=peers.WAIT) as ws:
                for msg in ["hello", b"\x00\x01binary\xff", "x" * 100000]:
                    await ws.send(msg)
                    assert await asyncio.wait_for(ws.recv(), peers.WAIT) == msg
                await ws.close()
            return True

    assert asyncio.run(asyncio.wait_for(main(), 3 * peers.WAIT))


def test_connect_tunnel_carries_both_directions_at_once(shunt, origin):
    import hashlib
    import threading

    origin.handler = echo_handler
    px = shunt()
    total = 32 << 20
    with px.client() as c:
        assert _connect(c, origin.host).status == 200
        block = bytes(range(256)) * 256
        errors = []

        def writer():
            try:
                for _ in range(total // len(block)):
                    c.sock.sendall(block)
                c.shutdown_write()
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()  # the echo comes back while we are still sending: no direction may wait
        h, want = hashlib.sha256(), hashlib.sha256()
        for _ in range(total // len(block)):
            want.update(block)
        n = 0
        while n < total + 3:
            d = c.r.read_some()
            if not d:
                break
            h.update(d[: max(0, total - n)])
            n += len(d)
        t.join(peers.WAIT)
        assert errors == [] and n == total + 3  # + b"bye"
        assert h.hexdigest() == want.hexdigest()


def test_connect_with_tunnel_bytes_in_the_same_send(shunt, origin):
    origin.handler = echo_handler
    px = shunt()
    host = origin.host.encode()
    with px.client() as c:
        c.send(b"CONNECT " + host + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n" + PAYLOAD)
        assert c.response(method="CONNECT").status == 200
        assert c.r.read_exact(len(PAYLOAD)) == PAYLOAD
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == PAYLOAD


def test_declined_upgrade_stays_http(shunt, origin):
    origin.handler = peers.reply_with(peers.response(body=b"no upgrade for you"), peers.OK)
    px = shunt()
    with px.client() as c:
        r = c.exchange(peers.get(origin.host, "/", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"))
        assert r.status == 200 and r.body == b"no upgrade for you"
        assert c.exchange(peers.get(origin.host, "/next")).raw == peers.OK  # still parsed as HTTP
    assert len(origin.conns[0].requests) == 2


def test_101_with_server_bytes_in_the_same_send(shunt, origin):
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"

    def switch_and_speak(conn):
        conn.recv_request()
        conn.send(switch + b"server speaks first")
        echo_handler(conn)

    origin.handler = switch_and_speak
    px = shunt()
    with px.client() as c:
        c.send(peers.get(origin.host, "/", b"Connection: Upgrade\r\nUpgrade: raw\r\n"))
        assert c.response().raw == switch
        assert c.r.read_exact(19) == b"server speaks first"
        c.send(PAYLOAD)
        assert c.r.read_exact(len(PAYLOAD)) == PAYLOAD


def test_upgrade_request_with_client_bytes_in_the_same_send(shunt, origin):
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"

    def switch_then_echo(conn):
        conn.recv_request()
        conn.send(switch)
        echo_handler(conn)

    origin.handler = switch_then_echo
    px = shunt()
    req = peers.get(origin.host, "/", b"Connection: Upgrade\r\nUpgrade: raw\r\n")
    with px.client() as c:
        c.send(req + PAYLOAD)  # the first frame right behind the request: not a request
        assert c.response().raw == switch
        assert c.r.read_exact(len(PAYLOAD)) == PAYLOAD
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == peers.origin_form(req) + PAYLOAD


def test_connect_with_tunnel_bytes_and_fin_right_behind(shunt, origin):
    origin.handler = echo_handler  # on FIN: sends b"bye", then closes
    px = shunt()
    host = origin.host.encode()
    with px.client() as c:
        c.send(b"CONNECT " + host + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n" + PAYLOAD)
        c.shutdown_write()  # before the tunnel is even up
        assert c.response(method="CONNECT").status == 200
        assert c.wait_eof() == (PAYLOAD + b"bye", "FIN")
    (conn,) = origin.wait_conns(1)
    assert bytes(conn.received) == PAYLOAD


def test_upgrade_with_fin_right_behind_the_request(shunt, origin):
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"

    def switch_then_echo(conn):
        conn.recv_request()
        conn.send(switch)
        echo_handler(conn)

    origin.handler = switch_then_echo
    px = shunt()
    req = peers.get(origin.host, "/", b"Connection: Upgrade\r\nUpgrade: raw\r\n")
    with px.client() as c:
        c.send(req + PAYLOAD)
        c.shutdown_write()
        assert c.response().raw == switch
        assert c.wait_eof() == (PAYLOAD + b"bye", "FIN")
