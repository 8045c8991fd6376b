"""Close mirroring, seen by the peers and on the wire (tshark on lo): a client FIN reaches
the origin as a FIN, a client RST as a RST; the origin ending the connection (FIN,
Connection: close, HTTP/1.0, a close-delimited body) ends the client connection with a FIN
after the response. Timeouts close idle and half-sent connections."""
import select
import threading
import time

import pytest

import peers
from peers import OK, get, reply_with, response, teardown_flags


def test_client_fin_reaches_origin_as_fin(shunt, origin, tshark):
    px = shunt()
    cap = tshark(origin.port, px.port)
    c = px.client()
    assert c.exchange(get(origin.host, "/")).raw == OK
    c.shutdown_write()
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"
    assert c.wait_eof() == (b"", "FIN")  # the origin closed in turn: mirrored back
    c.close()
    pkts = cap.packets()
    assert teardown_flags(pkts, conn.peer_port, origin.port) == ["FIN"], pkts
    # and the whole close was orderly on both legs, without a reset anywhere
    assert teardown_flags(pkts, origin.port, conn.peer_port) == ["FIN"], pkts
    assert teardown_flags(pkts, c.port, px.port) == ["FIN"], pkts
    assert teardown_flags(pkts, px.port, c.port) == ["FIN"], pkts


def test_client_rst_reaches_origin_as_rst(shunt, origin, tshark):
    px = shunt()
    cap = tshark(origin.port)
    c = px.client()
    assert c.exchange(get(origin.host, "/")).raw == OK
    c.reset()
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "RST"
    pkts = cap.packets()
    assert teardown_flags(pkts, conn.peer_port, origin.port) == ["RST"], pkts


def test_client_fin_after_request_still_gets_the_response(shunt, origin):
    px = shunt()
    req = get(origin.host, "/half")
    with px.client() as c:
        c.send(req)
        c.shutdown_write()  # FIN right behind the request
        assert c.response().raw == OK
        assert c.wait_eof() == (b"", "FIN")
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"
    assert bytes(conn.received) == peers.origin_form(req)


def test_origin_connection_close_ends_client_connection_with_fin(shunt, origin, tshark):
    reply = response(headers=[b"Connection: close"], body=b"bye")

    def reply_and_close(conn):
        conn.recv_request()
        conn.send(reply)
        conn.close()

    origin.handler = reply_and_close
    px = shunt()
    cap = tshark(px.port)
    c = px.client()
    c.send(get(origin.host, "/"))
    assert c.response().raw == reply
    assert c.wait_eof() == (b"", "FIN")
    c.close()
    pkts = cap.packets()
    assert teardown_flags(pkts, px.port, c.port) == ["FIN"], pkts


def test_origin_connection_close_ends_client_connection_even_if_origin_stays_open(shunt, origin):
    reply = response(headers=[b"Connection: close"], body=b"bye")
    origin.handler = reply_with(reply)  # keeps the connection open: the header decides
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply
        assert c.wait_eof() == (b"", "FIN")


def test_origin_fin_after_response_reaches_client_as_fin(shunt, origin):
    def reply_then_fin(conn):
        conn.recv_request()
        conn.send(OK)  # keep-alive framing, then a FIN without Connection: close
        conn.shutdown_write()
        conn.r.read_to_eof()

    origin.handler = reply_then_fin
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
        assert c.wait_eof() == (b"", "FIN")
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"


def test_http10_response_without_keepalive_ends_client_connection(shunt, origin):
    reply = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply
        assert c.wait_eof() == (b"", "FIN")


def test_close_delimited_body_is_delivered_whole_then_fin(shunt, origin):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    body = b"until the end " * 10000

    def close_delimited(conn):
        conn.recv_request()
        conn.send(head + body)
        conn.close()

    origin.handler = close_delimited
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/"))
        data, how = c.wait_eof()
        assert (data, how) == (head + body, "FIN")


def test_idle_keepalive_connection_closes_after_idle_timeout(shunt, origin):
    px = shunt("--idle-timeout", "1")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
        t0 = time.monotonic()
        assert c.wait_eof() == (b"", "FIN")
        assert 0.5 < time.monotonic() - t0 < 5
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "FIN"


def test_header_timeout_closes_a_half_sent_request(shunt, origin):
    px = shunt("--header-timeout", "1")
    with px.client() as c:
        c.send(b"GET http://" + origin.host.encode() + b"/ HTTP/1.1\r\nHost: ")
        t0 = time.monotonic()
        data, how = c.wait_eof()
        assert 0.5 < time.monotonic() - t0 < 5
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data
    assert origin.conns == []


def test_client_rst_during_an_exchange_reaches_origin_as_rst(shunt, origin):
    def hold(conn):
        conn.recv_request()
        conn.r.read_to_eof()  # no answer; watches how the connection ends

    origin.handler = hold
    px = shunt()
    c = px.client()
    c.send(get(origin.host, "/slow"))
    origin.wait_requests(1)
    c.reset()
    (conn,) = origin.wait_conns(1)
    assert conn.wait_end() == "RST"


def test_origin_rst_mid_response_reaches_client_as_rst(shunt, origin):
    def half_then_reset(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        conn.reset()

    origin.handler = half_then_reset
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/"))
        data, how = c.wait_eof()
        assert how == "RST", f"the origin's reset arrived as {how} after {len(data)} bytes"


def test_header_timeout_bounds_a_head_that_trickles_in(shunt, origin):
    px = shunt("--header-timeout", "1")
    head = get(origin.host, "/", b"".join(b"X-Slow-%d: v\r\n" % i for i in range(40)))
    with px.client() as c:
        t0 = time.monotonic()
        answered = None
        for i in range(len(head) - 2):  # never completes: the final CRLF is held back
            try:
                c.send(head[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                answered = time.monotonic() - t0
                break
            # one byte every 50 ms, unless the proxy answers or closes first
            if select.select([c.sock], [], [], 0.05)[0]:
                answered = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 5:
                break
        assert answered is not None and answered < 4, "a head that keeps trickling in must still time out"
        data, how = c.wait_eof()
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data
    assert origin.conns == []


def test_idle_timeout_does_not_cut_an_exchange_in_flight(shunt, origin):
    def answer_late(conn):
        conn.recv_request()
        threading.Event().wait(1.6)  # a slow origin: longer than the idle timeout
        conn.send(OK)
        conn.recv_request()

    origin.handler = answer_late
    px = shunt("--idle-timeout", "1", "--response-timeout", "10")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/slow")).raw == OK


def test_response_after_client_fin_is_delivered_whole(shunt, origin):
    body = bytes(range(256)) * 4096 * 8  # 8 MiB

    def answer_after_fin(conn):
        conn.recv_request()
        assert conn.r.read_some() == b"" and conn.r.eof == "FIN"  # the client's FIN came first
        conn.send(response(body=body))
        conn.close()

    origin.handler = answer_after_fin
    px = shunt()
    with px.client() as c:
        c.send(get(origin.host, "/"))
        c.shutdown_write()
        resp = c.response()
        assert resp.status == 200 and resp.body == body
        assert c.wait_eof() == (b"", "FIN")


def _answer_at_eof(conn):
    """Reads a request head, then everything until the client's end; answers 400, closes."""
    conn.recv_head()
    conn.r.read_to_eof()
    conn.send(response(b"400 Bad Request", body=b"incomplete"))
    conn.close()


@pytest.mark.parametrize("fin", ["right-behind", "after-forwarding"])
@pytest.mark.parametrize(
    "framing, partial",
    [(b"Content-Length: 10\r\n", b"12345"), (b"Transfer-Encoding: chunked\r\n", b"a\r\n12345")],
    ids=["content-length", "chunked"],
)
def test_client_fin_inside_a_request_body_reaches_origin_as_fin(shunt, origin, framing, partial, fin):
    # The client gives up in the middle of its body: the origin must learn it (FIN), not
    # wait for bytes that will never come.
    origin.handler = _answer_at_eof
    px = shunt()
    req = get(origin.host, "/upload", framing, method=b"POST", body=partial)
    with px.client() as c:
        c.send(req)
        if fin == "after-forwarding":
            (conn,) = origin.wait_conns(1)
            conn.wait_received(len(peers.origin_form(req)))
        c.shutdown_write()
        (conn,) = origin.wait_conns(1)
        assert conn.wait_end() == "FIN", "the client's FIN did not reach the origin"
        assert bytes(conn.received) == peers.origin_form(req)
        resp = c.response()
        assert resp is not None and resp.status == 400, resp
        assert c.wait_eof()[0] == b""
