"""The test peers themselves, without shunt: when one of these fails, the other failures
are the harness's, not the proxy's."""
import hashlib
import socket

import peers
from peers import Client, curl


def test_origin_records_exact_bytes_and_fin(origin):
    with Client(origin.port) as c:
        req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        resp = c.exchange(req)
        assert resp.raw == peers.OK
        c.shutdown_write()
        assert c.wait_eof() == (b"", "FIN")
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"
    assert bytes(conn.received) == req
    assert conn.peer_port == c.port


def test_origin_sees_rst_from_linger_zero_close(origin):
    c = Client(origin.port)
    c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.reset()
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "RST"


def test_nginx_serves_small_204_304_and_tls(nginx):
    r = curl("-i", nginx.url + "/small")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\r\n\r\nhello from nginx\n")
    r = curl("-o", "/dev/null", "-w", "%{http_code}", nginx.url + "/204")
    assert r.stdout == b"204"
    r = curl("-sI", nginx.url + "/files/small.txt")
    etag = [l.split(b": ", 1)[1] for l in r.stdout.split(b"\r\n") if l.lower().startswith(b"etag:")][0]
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", b"If-None-Match: " + etag, nginx.url + "/files/small.txt")
    assert r.stdout == b"304"
    r = curl("-k", nginx.tls_url + "/")
    assert r.stdout == b"hello over tls\n", r.stderr


def test_nginx_dav_put_then_get(nginx):
    r = curl("-T", "-", nginx.url + "/dav/peer-selfcheck")  # stdin is /dev/null: empty body
    assert r.returncode == 0, r.stderr
    with Client(nginx.port) as c:
        body = b"0123456789" * 1000
        resp = c.exchange(b"PUT /dav/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert resp.status in (201, 204), resp
        resp = c.exchange(b"GET /dav/x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert resp.body == body


def test_nginx_big_file_digest(nginx):
    with Client(nginx.port) as c:
        c.send(b"GET /files/big.bin HTTP/1.1\r\nHost: h\r\n\r\n")
        h = hashlib.sha256()
        m = peers.read_message(c.r, sink=h.update)
        assert m.status == 200 and int(m.get("content-length")) == peers.BIG_SIZE
        assert h.hexdigest() == nginx.big_sha256


def test_tshark_sees_fin_and_rst(origin, tshark):
    cap = tshark(origin.port)
    a = Client(origin.port)
    a.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    a.shutdown_write()
    b = Client(origin.port)
    b.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    b.reset()
    ca, cb = origin.wait_conns(2)
    assert ca.wait_end() == "FIN" and cb.wait_end() == "RST"
    pkts = cap.packets()
    assert peers.teardown_flags(pkts, a.port, origin.port) == ["FIN"]
    assert peers.teardown_flags(pkts, b.port, origin.port) == ["RST"]
    a.close()


def test_black_hole_connect_hangs():
    bh = peers.BlackHole()
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", bh.port))
        raise AssertionError("connect succeeded on a full backlog")
    except socket.timeout:
        pass
    finally:
        s.close()
        bh.close()
