"""Forward mode: absolute-form requests reach the origin in origin-form, with the header
section unchanged (order, case, spacing) except Proxy-Connection and Proxy-Authorization,
and the response comes back byte for byte."""
from peers import OK, curl, get, origin_form, reply_with, response


def test_get_reaches_origin_in_origin_form_with_headers_unchanged(shunt, origin):
    px = shunt()
    extra = (
        b"User-Agent: raw/1\r\n"
        b"x-lower-case: v\r\n"
        b"X-UPPER-CASE: V\r\n"
        b"X-Spaces:   padded value  \r\n"
        b"X-Tab:\tt\r\n"
        b"X-Dup: 1\r\n"
        b"Accept: */*\r\n"
        b"X-Dup: 2\r\n"
        b"X-Empty:\r\n"
    )
    req = get(origin.host, "/path/x?q=1&r=%20", extra)
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert bytes(origin.conns[0].received) == (
        b"GET /path/x?q=1&r=%20 HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\n" + extra + b"\r\n"
    )


def test_proxy_connection_and_proxy_authorization_are_removed(shunt, origin):
    px = shunt()
    req = get(origin.host, "/", b"Proxy-Connection: keep-alive\r\nX-A: 1\r\n"
              b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nX-B: 2\r\nproxy-connection: Keep-Alive\r\n")
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert bytes(origin.conns[0].received) == (
        b"GET / HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
    )


def test_no_via_header_by_default(shunt, origin):
    px = shunt()
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/"))
    origin.wait_requests(1)
    assert b"via:" not in bytes(origin.conns[0].received).lower()
    assert resp.get("via") is None


def test_via_header_added_with_via_option(shunt, origin):
    px = shunt("--via")
    with px.client() as c:
        c.exchange(get(origin.host, "/", b"X-A: 1\r\n"))
    (req,) = origin.conns[0].requests
    vias = req.all("via")
    assert len(vias) == 1 and vias[0].startswith(b"1.1 "), req


def test_host_header_is_set_from_the_absolute_url(shunt, origin):
    # RFC 9112 3.2.2: a proxy replaces Host with the authority of the target (README).
    px = shunt()
    req = b"GET http://" + origin.host.encode() + b"/ HTTP/1.1\r\nHost: other.example\r\nX-A: 1\r\n\r\n"
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert bytes(origin.conns[0].received) == (
        b"GET / HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\nX-A: 1\r\n\r\n"
    )


def test_post_with_content_length_body_forwarded_exactly(shunt, origin):
    px = shunt()
    body = bytes(range(256)) * 40
    req = get(origin.host, "/post", b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body),
              method=b"POST", body=body)
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert bytes(origin.conns[0].received) == origin_form(req)


def test_post_with_chunked_body_extensions_and_trailers_forwarded_exactly(shunt, origin):
    px = shunt()
    body = b"5;ext=1\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    req = get(origin.host, "/chunked", b"Transfer-Encoding: chunked\r\n", method=b"POST", body=body)
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert bytes(origin.conns[0].received) == origin_form(req)
    assert origin.conns[0].requests[0].body == b"hello" + b"z" * 26


def test_response_bytes_come_back_unchanged(shunt, origin):
    reply = (b"HTTP/1.1 200 Fine Thanks\r\nserver: Odd/1\r\nX-Z: last-first\r\nSet-Cookie: a=1\r\n"
             b"Set-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3;x=y\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n")
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply


def test_origin_form_request_to_forward_proxy_gets_400_with_an_explanation(shunt, origin):
    px = shunt()
    with px.client() as c:
        resp = c.exchange(b"GET /path HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\n\r\n")
        assert resp.status == 400
        assert len(resp.body) > 20 and b"absolute" in resp.body.lower(), resp
        assert c.wait_eof()[0] == b""
    assert origin.conns == []


def _curl_request_as_sent_to_a_proxy(origins, *args):
    """What curl sends to a proxy for these args: a scripted peer plays the proxy."""
    catcher = origins()
    r = curl("-x", catcher.url, *args)
    assert r.returncode == 0, r.stderr
    catcher.wait_requests(1)
    return catcher.conns[0].requests[0].raw


def test_curl_get_reaches_origin_without_proxy_connection(shunt, origin, origins):
    px = shunt()
    url = origin.url + "/curl?x=1"
    sent = _curl_request_as_sent_to_a_proxy(origins, "-H", "X-Case-Kept: Yes", url.replace(origin.host, "H:1"))
    assert b"Proxy-Connection: Keep-Alive\r\n" in sent  # curl's own, to be removed
    r = curl("-x", px.proxy_url, "-H", "X-Case-Kept: Yes", url)
    assert r.returncode == 0 and r.stdout == b"ok", r.stderr
    expected = origin_form(sent.replace(b"H:1", origin.host.encode())).replace(b"Proxy-Connection: Keep-Alive\r\n", b"")
    assert bytes(origin.conns[0].received) == expected


def test_curl_post_with_content_length_reaches_origin_exactly(shunt, origin, origins):
    px = shunt()
    data = "a=1&b=" + "x" * 500
    sent = _curl_request_as_sent_to_a_proxy(origins, "-d", data, "http://H:1/form")
    r = curl("-x", px.proxy_url, "-d", data, origin.url + "/form")
    assert r.returncode == 0 and r.stdout == b"ok", r.stderr
    expected = origin_form(sent.replace(b"H:1", origin.host.encode())).replace(b"Proxy-Connection: Keep-Alive\r\n", b"")
    assert bytes(origin.conns[0].received) == expected
    assert expected.endswith(b"\r\n\r\n" + data.encode())


def test_curl_post_chunked_reaches_origin_exactly(shunt, origin, origins):
    px = shunt()
    args = ["-H", "Transfer-Encoding: chunked", "--data-binary", "chunky body"]
    sent = _curl_request_as_sent_to_a_proxy(origins, *args, "http://H:1/chunked")
    r = curl("-x", px.proxy_url, *args, origin.url + "/chunked")
    assert r.returncode == 0 and r.stdout == b"ok", r.stderr
    expected = origin_form(sent.replace(b"H:1", origin.host.encode())).replace(b"Proxy-Connection: Keep-Alive\r\n", b"")
    assert bytes(origin.conns[0].received) == expected
    assert origin.conns[0].requests[0].body == b"chunky body"


def test_curl_get_from_nginx(shunt, nginx):
    px = shunt()
    r = curl("-x", px.proxy_url, nginx.url + "/small")
    assert r.returncode == 0 and r.stdout == b"hello from nginx\n", r.stderr


def test_chunked_put_then_get_back_through_nginx(shunt, nginx):
    import os

    px = shunt()
    data = os.urandom(1 << 20)
    chunks = b"".join(b"%x\r\n" % len(data[i : i + 65000]) + data[i : i + 65000] + b"\r\n"
                      for i in range(0, len(data), 65000)) + b"0\r\n\r\n"
    with px.client() as c:
        resp = c.exchange(get(nginx.host, "/dav/roundtrip.bin", b"Transfer-Encoding: chunked\r\n", method=b"PUT",
                              body=chunks))
        assert resp.status in (201, 204), resp
        resp = c.exchange(get(nginx.host, "/dav/roundtrip.bin"))
        assert resp.status == 200 and resp.body == data


def test_absolute_url_without_path_becomes_slash(shunt, origin):
    px = shunt()
    req = b"GET http://" + origin.host.encode() + b" HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\n\r\n"
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert origin.received == b"GET / HTTP/1.1\r\nHost: " + origin.host.encode() + b"\r\n\r\n"


def test_request_sent_one_byte_at_a_time_arrives_exactly(shunt, origin):
    import socket

    px = shunt()
    body = b"4\r\nwiki\r\n5;a=b\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
    req = get(origin.host, "/bytes", b"Transfer-Encoding: chunked\r\nX-A: 1\r\n", method=b"POST", body=body)
    with px.client() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(req)):
            c.send(req[i : i + 1])
        assert c.response().raw == OK
    origin.wait_requests(1)
    assert origin.received == origin_form(req)


def test_forward_to_a_host_name(shunt, origin):
    px = shunt()
    host = f"localhost:{origin.port}"
    with px.client() as c:
        assert c.exchange(get(host, "/by-name")).raw == OK
    origin.wait_requests(1)
    assert origin.received == b"GET /by-name HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n"


def test_forward_to_an_ipv6_literal(shunt, origins):
    o6 = origins(ip="::1")
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(o6.host, "/v6")).raw == OK
    o6.wait_requests(1)
    assert o6.received == b"GET /v6 HTTP/1.1\r\nHost: " + o6.host.encode() + b"\r\n\r\n"


def test_early_response_then_the_body_still_reaches_the_origin(shunt, origin):
    early = response(b"401 Unauthorized", [b"WWW-Authenticate: Basic"])

    def answer_before_body(conn):
        conn.recv_head()
        conn.send(early)  # before the body arrived (Expect: 100-continue not honoured)
        assert conn.r.read_exact(5) == b"hello"
        conn.recv_request()
        conn.send(OK)
        conn.recv_request()

    origin.handler = answer_before_body
    px = shunt()
    head = get(origin.host, "/", b"Content-Length: 5\r\nExpect: 100-continue\r\n", method=b"POST")
    nxt = get(origin.host, "/next")
    with px.client() as c:
        c.send(head)
        assert c.response().raw == early
        c.send(b"hello")  # the client sends the body anyway, as curl does
        assert c.exchange(nxt).raw == OK
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == origin_form(head) + b"hello" + origin_form(nxt)
