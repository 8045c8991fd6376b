"""Strict parsing (src/http/parser.h): a request the parser must refuse gets 400 and a
closed connection, and the origin receives nothing (no bytes, no connection); a response
that cannot be framed safely gets 502. Cases are data: the bytes sent, with $H standing
for the origin's host:port."""
import sqlite3

import pytest

import peers
from peers import OK, get, origin_form


def R(*lines, body=b""):
    """A request from its lines (CRLF added), the empty line, then <body>."""
    return b"".join(l + b"\r\n" for l in lines) + b"\r\n" + body


GET = b"GET http://$H/ HTTP/1.1"
POST = b"POST http://$H/ HTTP/1.1"
HOST = b"Host: $H"

REJECTED_REQUESTS = {
    # framing
    "te_and_cl": R(POST, HOST, b"Transfer-Encoding: chunked", b"Content-Length: 5", body=b"0\r\n\r\n"),
    "cl_and_te": R(POST, HOST, b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "differing_cl_fields": R(POST, HOST, b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
    "differing_cl_list": R(POST, HOST, b"Content-Length: 5, 6", body=b"hello!"),
    "cl_not_a_number": R(POST, HOST, b"Content-Length: 5x", body=b"hello"),
    "cl_negative": R(POST, HOST, b"Content-Length: -5", body=b"hello"),
    "cl_plus_sign": R(POST, HOST, b"Content-Length: +5", body=b"hello"),
    "cl_overflow": R(POST, HOST, b"Content-Length: 99999999999999999999999", body=b"hello"),
    "te_not_chunked": R(POST, HOST, b"Transfer-Encoding: gzip", body=b"hello"),
    "te_chunked_not_last": R(POST, HOST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
    "te_in_http10": R(b"POST http://$H/ HTTP/1.0", HOST, b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "bad_chunk_size": R(POST, HOST, b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"),
    "negative_chunk_size": R(POST, HOST, b"Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_overflow": R(POST, HOST, b"Transfer-Encoding: chunked",
                             body=b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_overflow_many_f": R(POST, HOST, b"Transfer-Encoding: chunked",
                                    body=b"F" * 17 + b"\r\nhello\r\n0\r\n\r\n"),
    "bad_chunk_extension": R(POST, HOST, b"Transfer-Encoding: chunked", body=b"5;a\x00b\r\nhello\r\n0\r\n\r\n"),
    "bad_trailer": R(POST, HOST, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-T : v\r\n\r\n"),
    "chunk_without_crlf": R(POST, HOST, b"Transfer-Encoding: chunked", body=b"5\r\nhelloXX0\r\n\r\n"),
    # bytes that don't belong
    "bare_cr_in_header_value": R(GET, HOST, b"X-A: a\rb"),
    "bare_cr_in_request_line": R(b"GET http://$H/\r HTTP/1.1", HOST),
    "bare_cr_as_line_end": b"GET http://$H/ HTTP/1.1\r\nHost: $H\rX-A: b\r\n\r\n",
    "bare_lf_line_ends": b"GET http://$H/ HTTP/1.1\nHost: $H\n\n",
    "obs_fold_space": R(GET, HOST, b"X-A: a", b" b"),
    "obs_fold_tab": R(GET, HOST, b"X-A: a", b"\tb"),
    "space_before_colon": R(GET, HOST, b"X-A : a"),
    "tab_before_colon": R(GET, HOST, b"X-A\t: a"),
    "no_colon": R(GET, HOST, b"X-A a"),
    "empty_header_name": R(GET, HOST, b": a"),
    "separator_in_header_name": R(GET, HOST, b"X(A): a"),
    "nul_in_method": R(b"G\x00ET http://$H/ HTTP/1.1", HOST),
    "ctl_in_method": R(b"G\x01ET http://$H/ HTTP/1.1", HOST),
    "nul_in_target": R(b"GET http://$H/a\x00b HTTP/1.1", HOST),
    "ctl_in_target": R(b"GET http://$H/a\x01b HTTP/1.1", HOST),
    "del_in_target": R(b"GET http://$H/a\x7fb HTTP/1.1", HOST),
    "nul_in_header_name": R(GET, HOST, b"X-\x00A: a"),
    "ctl_in_header_name": R(GET, HOST, b"X-\x01A: a"),
    "nul_in_header_value": R(GET, HOST, b"X-A: a\x00b"),
    "ctl_in_header_value": R(GET, HOST, b"X-A: a\x01b"),
    "del_in_header_value": R(GET, HOST, b"X-A: a\x7fb"),
    # request line and Host
    "no_host_in_http11": R(GET, b"X-A: 1"),
    "two_host_fields": R(GET, HOST, HOST),
    "bad_version": R(b"GET http://$H/ HTTP/1.x", HOST),
    "missing_version": R(b"GET http://$H/", HOST),
    "two_spaces_in_request_line": R(b"GET  http://$H/ HTTP/1.1", HOST),
    # limits (defaults: line 8192, head 65536, 100 fields)
    "request_line_over_8192": R(b"GET http://$H/" + b"a" * 8192 + b" HTTP/1.1", HOST),
    "head_over_65536": R(GET, HOST, *[b"X-Big-%02d: " % i + b"v" * 1400 for i in range(48)]),
    "over_100_header_fields": R(GET, HOST, *[b"X-F%d: v" % i for i in range(100)]),
}


def _fill(case, origin):
    return case.replace(b"$H", origin.host.encode())


def _assert_rejected(px, origin, data, status=400):
    with px.client() as c:
        c.send(data)
        resp = c.response()
        assert resp is not None, "the connection ended without a response"
        assert resp.status == status, resp
        assert resp.body, "the refusal says why"
        rest, how = c.wait_eof()  # and the connection is closed
        assert rest == b""
    # A request that was accepted after this one gets through: the origin saw that one only.
    with px.client() as c:
        marker = get(origin.host, "/after-the-rejected-one")
        assert c.exchange(marker).raw == OK
    origin.wait_requests(1)
    assert len(origin.conns) == 1, "the rejected request opened an upstream connection"
    assert origin.received == origin_form(marker), "the origin received bytes of the rejected request"
    return resp


@pytest.mark.parametrize("case", REJECTED_REQUESTS.values(), ids=REJECTED_REQUESTS.keys())
def test_rejected_request_gets_400_closed_and_origin_receives_nothing(shunt, origin, case):
    px = shunt()
    _assert_rejected(px, origin, _fill(case, origin))


# ------------------------------------------------------------------ limits: at vs over


def _line_of(n, origin):
    """A request whose request line (without CRLF) is exactly n bytes."""
    pre = b"GET http://" + origin.host.encode() + b"/"
    post = b" HTTP/1.1"
    return pre + b"a" * (n - len(pre) - len(post)) + post + b"\r\nHost: " + origin.host.encode() + b"\r\n\r\n"


def _head_of(n, origin, field_len=1000):
    """A request head of exactly n bytes (start line through the final CRLF)."""
    base = get(origin.host, "/")
    fields = []
    left = n - len(base)
    i = 0
    while left > 0:
        line = b"X-P%03d: " % i
        take = min(field_len, left - len(line) - 2)
        if take < 1:  # too short for another field: lengthen the previous one
            fields[-1] += b"v" * left
            break
        fields.append(line + b"v" * take)
        left -= len(fields[-1]) + 2
        i += 1
    req = base[:-2] + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    assert len(req) == n
    return req


def _fields(n, origin):
    """A request with exactly n header fields (Host included)."""
    return get(origin.host, "/", b"".join(b"X-F%d: v\r\n" % i for i in range(n - 1)))


def _assert_forwarded(px, origin, req):
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert origin.received == origin_form(req)


@pytest.mark.parametrize(
    "opts, make, at",
    [
        ([], _line_of, 8192),
        ([], _head_of, 65536),
        ([], _fields, 100),
        (["--max-line", "100"], _line_of, 100),
        (["--max-head", "2048"], _head_of, 2048),
        (["--max-headers", "5"], _fields, 5),
    ],
    ids=["line-8192", "head-65536", "fields-100", "max-line-100", "max-head-2048", "max-headers-5"],
)
def test_request_at_the_limit_is_forwarded(shunt, origin, opts, make, at):
    px = shunt(*opts)
    _assert_forwarded(px, origin, make(at, origin))


@pytest.mark.parametrize(
    "opts, make, over",
    [
        ([], _line_of, 8193),
        ([], _head_of, 65537),
        ([], _fields, 101),
        (["--max-line", "100"], _line_of, 101),
        (["--max-head", "2048"], _head_of, 2049),
        (["--max-headers", "5"], _fields, 6),
    ],
    ids=["line-8193", "head-65537", "fields-101", "max-line-100", "max-head-2048", "max-headers-5"],
)
def test_request_one_over_the_limit_is_rejected(shunt, origin, opts, make, over):
    px = shunt(*opts)
    _assert_rejected(px, origin, make(over, origin))


def test_rejected_request_after_a_good_one_closes_the_connection(shunt, origin):
    px = shunt()
    good = get(origin.host, "/good")
    with px.client() as c:
        assert c.exchange(good).raw == OK
        c.send(_fill(REJECTED_REQUESTS["te_and_cl"], origin))
        assert c.response().status == 400
        assert c.wait_eof()[0] == b""
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == origin_form(good)


# ------------------------------------------------------------------ responses


REJECTED_RESPONSES = {
    "te_and_cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "differing_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "bad_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
    "negative_cl": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
    "not_http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    "bad_status": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    "bare_cr": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "nul_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
}


@pytest.mark.parametrize("reply", REJECTED_RESPONSES.values(), ids=REJECTED_RESPONSES.keys())
def test_response_that_cannot_be_framed_safely_gets_502(shunt, origin, reply):
    origin.handler = peers.reply_with(reply)
    px = shunt()
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/"))
        assert resp.status == 502, resp
        assert resp.body
        assert reply not in resp.raw


def test_pipelined_bad_request_behind_a_good_one_never_reaches_origin(shunt, origin):
    px = shunt()
    good = get(origin.host, "/good")
    bad = _fill(REJECTED_REQUESTS["te_and_cl"], origin)
    with px.client() as c:
        c.send(good + bad)  # one send
        assert c.response().raw == OK
        resp = c.response()
        assert resp.status == 400, resp
        assert c.wait_eof()[0] == b""
    (conn,) = origin.wait_conns(1)
    conn.wait_end()
    assert bytes(conn.received) == origin_form(good)


MORE_TE_CASES = {
    "te_chunked_then_identity_field": R(POST, HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity",
                                        body=b"0\r\n\r\n"),
    "te_xchunked": R(POST, HOST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
    "te_chunked_twice": R(POST, HOST, b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
    "space_before_first_header": R(GET, b" " + HOST),
}


@pytest.mark.parametrize("case", MORE_TE_CASES.values(), ids=MORE_TE_CASES.keys())
def test_ambiguous_request_gets_400_and_origin_receives_nothing(shunt, origin, case):
    px = shunt()
    _assert_rejected(px, origin, _fill(case, origin))


# ------------------------------------------------------------------ the capture


def _capture_rows(path, sql):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def test_a_rejected_request_is_recorded_with_the_400_the_client_got(shunt, origin, tmp_path):
    """What the client received when shunt answered itself is in the capture: no head from
    a server (resp_head NULL), the head and body as sent, flag 64; the error says why, with
    the reason and the offset, and is the body's text."""
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap)
    bad = _fill(REJECTED_REQUESTS["space_before_colon"], origin)
    with px.client() as c:
        c.send(bad)
        resp = c.response()
        assert resp.status == 400
        c.wait_eof()
    assert px.stop() == []
    (e,) = _capture_rows(cap, "SELECT * FROM exchanges")
    bodies = _capture_rows(cap, "SELECT * FROM bodies")
    assert e["resp_head"] is None and e["upstream_id"] is None and e["status"] == 400
    assert bytes(e["resp_head_sent"]) == resp.raw[: len(resp.raw) - len(resp.body)]
    assert [(b["direction"], bytes(b["data"])) for b in bodies] == [(1, resp.body)]
    assert e["flags"] & 64 and e["flags"] & 2 and not e["flags"] & (1 | 16 | 32)
    assert resp.body == b"shunt: " + e["error"].encode() + b"\n"
    assert "at byte" in e["error"] and bytes(e["req_head"]) == bad
    assert e["resp_body_size"] == len(resp.body) and e["resp_bytes"] == len(resp.raw)


def test_a_refusal_naming_a_long_target_is_stored_whole(shunt, tmp_path):
    """The 400 for a target with user info names the target: all of it, in the body and in
    the error (they were cut at 200 bytes), and the URL is whole."""
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap)
    target = b"http://user@127.0.0.1:1/" + b"p" * 3000
    with px.client() as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        resp = c.response()
        assert resp.status == 400
    assert target in resp.body
    assert px.stop() == []
    (e,) = _capture_rows(cap, "SELECT url, error FROM exchanges")
    assert e["url"] == target.decode()
    assert target.decode() in e["error"] and len(e["error"]) > 3000
    assert resp.body == b"shunt: " + e["error"].encode() + b"\n"
