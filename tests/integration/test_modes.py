"""Reverse mode, the client allow-list, listening on IPv6, and the Proxy-Support header
added to connection-bound auth challenges in forward mode."""
import pytest

import peers
from peers import OK, curl, get, reply_with, response

# ------------------------------------------------------------------ reverse


def test_reverse_mode_keeps_the_client_host(shunt, origin):
    px = shunt("--reverse", origin.url)
    req = b"GET /r/x?y=1 HTTP/1.1\r\nHost: public.example\r\nX-Case: Kept\r\n\r\n"
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert origin.received == req


def test_reverse_host_sets_host_to_the_origin(shunt, origin):
    px = shunt("--reverse", origin.url, "--reverse-host")
    req = b"GET /r HTTP/1.1\r\nX-Before: 1\r\nHost: public.example\r\nX-After: 2\r\n\r\n"
    with px.client() as c:
        assert c.exchange(req).raw == OK
    origin.wait_requests(1)
    assert origin.received == req.replace(b"public.example", origin.host.encode())


def test_reverse_mode_with_curl_and_nginx(shunt, nginx):
    px = shunt("--reverse", nginx.url)
    r = curl(f"http://127.0.0.1:{px.port}/small", f"http://127.0.0.1:{px.port}/files/small.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello from nginx\nsmall file\n"


# ------------------------------------------------------------------ allow-list and listening


def test_non_loopback_listen_without_allow_exits_with_an_error(shunt):
    px = shunt(listen="0.0.0.0:0", wait_listening=False)
    rc = px.wait_exit()
    assert rc != 0
    assert "allow" in px.stderr, px.stderr
    assert px.stdout_lines == []


def test_client_outside_the_allow_list_gets_403(shunt, origin):
    px = shunt("--allow", "10.0.0.0/8", listen="0.0.0.0:0")
    with peers.Client(px.port, "127.0.0.1") as c:
        resp = c.exchange(get(origin.host, "/"))
        assert resp.status == 403, resp
    assert origin.conns == []


def test_client_inside_the_allow_list_is_served(shunt, origin):
    # the origin is on loopback, which a proxy for other machines refuses by default
    # (test_hostile_proxy.py): this test is about the clients let in
    px = shunt("--allow", "10.0.0.0/8,127.0.0.0/8", "--allow-loopback-upstream",
               listen="0.0.0.0:0")
    with peers.Client(px.port, "127.0.0.1") as c:
        assert c.exchange(get(origin.host, "/")).raw == OK


def test_listens_on_ipv6_loopback(shunt, origin):
    px = shunt(listen="[::1]:0")
    assert px.listen_line == f"shunt: listening on [::1]:{px.port}"
    with peers.Client(px.port, "::1") as c:
        assert c.exchange(get(origin.host, "/v6")).raw == OK
    r = curl("-x", f"http://[::1]:{px.port}", origin.url + "/curl")
    assert r.returncode == 0 and r.stdout == b"ok", r.stderr


def test_listening_line_is_exact(shunt):
    px = shunt()
    assert px.stdout_lines[0] == f"shunt: listening on 127.0.0.1:{px.port}"


# ------------------------------------------------------------------ Proxy-Support

PS = (b"Proxy-Support", b"Session-Based-Authentication")


def _challenge(scheme):
    return response(b"401 Unauthorized", [b"Server: Microsoft-IIS/10.0", b"WWW-Authenticate: " + scheme,
                                          b"Content-Type: text/html"], body=b"denied")


@pytest.mark.parametrize("scheme", [b"NTLM", b"Negotiate", b"Negotiate abcdef=="])
def test_forward_mode_adds_proxy_support_to_connection_bound_challenges(shunt, origin, scheme):
    reply = _challenge(scheme)
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/"))
    sent = peers.read_message(peers.Reader(_BytesSock(reply)))
    assert resp.status == 401 and resp.body == b"denied"
    assert resp.headers.count(PS) == 1, resp
    assert [h for h in resp.headers if h != PS] == sent.headers  # everything else unchanged


def test_no_proxy_support_option_leaves_the_challenge_unchanged(shunt, origin):
    reply = _challenge(b"NTLM")
    origin.handler = reply_with(reply)
    px = shunt("--no-proxy-support")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply


def test_basic_challenge_gets_no_proxy_support(shunt, origin):
    reply = _challenge(b'Basic realm="x"')
    origin.handler = reply_with(reply)
    px = shunt()
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == reply


def test_reverse_mode_adds_no_proxy_support(shunt, origin):
    reply = _challenge(b"NTLM")
    origin.handler = reply_with(reply)
    px = shunt("--reverse", origin.url)
    with px.client() as c:
        assert c.exchange(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").raw == reply


class _BytesSock:
    """recv() over fixed bytes, to parse an expected message with the same reader."""

    def __init__(self, data):
        self.data = data

    def recv(self, n):
        d, self.data = self.data[:n], self.data[n:]
        return d
