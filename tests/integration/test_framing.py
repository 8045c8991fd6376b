"""Responses without a body (HEAD, 204, 304) and interim responses (100-continue, 103):
the proxy frames them right, so the next exchange on the connection still works."""
import pytest

import peers
from peers import OK, curl, get, reply_with, response

NEXT = get  # alias: the follow-up request on the same connection


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    ],
    ids=["content-length", "chunked", "no-framing"],
)
def test_head_response_has_no_body_and_connection_goes_on(shunt, origin, reply):
    origin.handler = reply_with(reply, OK)
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/", method=b"HEAD"))
        assert c.response(method="HEAD").raw == reply
        assert c.exchange(NEXT(origin.host, "/next")).raw == OK
    assert len(origin.conns) == 1


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1000\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
    ],
    ids=["204", "204-content-length-0", "304-content-length", "304"],
)
def test_bodiless_status_and_connection_goes_on(shunt, origin, reply):
    origin.handler = reply_with(reply, OK)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply
        assert c.exchange(NEXT(origin.host, "/next")).raw == OK
    assert len(origin.conns) == 1


def test_nginx_204_and_304_through_proxy(shunt, nginx):
    px = shunt()
    r = curl("-x", px.proxy_url, "-o", "/dev/null", "-w", "%{http_code}", nginx.url + "/204")
    assert r.stdout == b"204", r.stderr
    r = curl("-x", px.proxy_url, "-sI", nginx.url + "/files/small.txt")
    etag = [l.split(b": ", 1)[1] for l in r.stdout.split(b"\r\n") if l.lower().startswith(b"etag:")][0]
    r = curl("-v", "-x", px.proxy_url, "-H", b"If-None-Match: " + etag, nginx.url + "/files/small.txt",
             nginx.url + "/small")
    assert r.returncode == 0, r.stderr
    assert b"< HTTP/1.1 304 Not Modified" in r.stderr
    assert r.stdout == b"hello from nginx\n"


def test_expect_100_continue_passes_the_interim_response(shunt, origin):
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"

    def continue_then_ok(conn):
        head = conn.recv_head()
        assert head.get("expect") == b"100-continue", head
        conn.send(interim)
        conn.r.read_exact(5)
        conn.send(OK)
        conn.recv_request()

    origin.handler = continue_then_ok
    px = shunt()
    head = get(origin.host, "/upload", b"Content-Length: 5\r\nExpect: 100-continue\r\n", method=b"POST")
    with px.client() as c:
        c.send(head)  # the body waits for the 100
        assert c.response().raw == interim
        c.send(b"hello")
        assert c.response().raw == OK
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == peers.origin_form(head) + b"hello"


def test_103_early_hints_then_200_both_reach_the_client(shunt, origin):
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    origin.handler = reply_with(hints + OK)
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/"))
        interim, final = c.final_response()
        assert [m.raw for m in interim] == [hints]
        assert final.raw == OK
        c.send(NEXT(origin.host, "/next"))
        interim, final = c.final_response()
        assert [m.raw for m in interim] == [hints] and final.raw == OK


def test_response_with_non_chunked_transfer_coding_is_framed_by_close(shunt, origin):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
    body = b"\x1f\x8b not really gzip, ended by the close"

    def reply_then_close(conn):
        conn.recv_request()
        conn.send(head + body)
        conn.close()

    origin.handler = reply_then_close
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/"))
        assert c.wait_eof() == (head + body, "FIN")


def test_http10_response_with_keepalive_keeps_the_connection(shunt, origin):
    reply = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/1")).raw == reply
        assert c.exchange(get(origin.host, "/2")).raw == reply
    assert len(origin.conns) == 1


def test_pipelined_request_after_connection_close_response_gets_no_answer(shunt, origin):
    reply = response(headers=[b"Connection: close"], body=b"last")

    def reply_and_close(conn):
        conn.recv_request()
        conn.send(reply)
        conn.close()

    origin.handler = reply_and_close
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/1") + get(origin.host, "/2"))
        data, how = c.wait_eof()
        assert data == reply
    assert len(origin.conns) == 1


def test_large_response_head_is_forwarded_unchanged(shunt, origin):
    reply = response(headers=[b"Set-Cookie: c%03d=" % i + b"v" * 500 for i in range(110)], body=b"ok")
    assert 50000 < len(reply) < 65536
    origin.handler = reply_with(reply)
    px = shunt("--max-headers", "200")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply


def test_response_head_over_the_limit_gets_502(shunt, origin):
    reply = response(headers=[b"Set-Cookie: c%03d=" % i + b"v" * 1000 for i in range(70)], body=b"ok")
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).status == 502


def test_bytes_past_the_content_length_reach_the_client_as_from_the_server(shunt, origin):
    """A server that sends more than its Content-Length: the client of a paired connection
    gets every byte, as it would talking to the server (and, like curl or a browser, drops
    the connection); the proxy no longer swallows them, which hid the defect."""
    def overlong(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        conn.recv_request()  # until the client goes
        conn.close()

    origin.handler = overlong
    px = shunt()
    with px.client() as c:
        r = c.exchange(get(origin.host, "/"))
        assert (r.status, r.body) == (200, b"ok")
        c.shutdown_write()
        assert c.wait_eof() == (b"EXTRA", "FIN")


def test_a_408_on_an_idle_connection_reaches_the_client(shunt, origin):
    """Servers answer an idle keep-alive connection with a 408 and close it; the client sees
    the 408 and the FIN, as it would direct."""
    late = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def idle_408(conn):
        conn.recv_request()
        conn.send(OK)
        conn.send(late)
        conn.close()

    origin.handler = idle_408
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
        assert c.wait_eof() == (late, "FIN")
