"""The admin API under a hostile local client and with its token kept out of argv: idle
connections cannot lock the user out, the token can come from a file or the environment,
and a second shunt cannot silently share a port that one already listens on."""
import os
import socket
import subprocess
import time

import pytest

import peers
from test_admin import admin_of, admin_port, api, ctl

# The server closes a connection that sent no complete request head within this long
# (ADMIN_HEAD_MS in src/web/admin.c); tests wait up to three times as long.
HEAD_TIMEOUT = 5.0


def idle_connections(port, n):
    """<n> connections to 127.0.0.1:<port> that send nothing."""
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(HEAD_TIMEOUT * 3)
        out.append(s)
    return out


def closed_by_peer(s):
    """True when the server closed <s> (FIN or RST); waits up to the socket's timeout."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# ----------------------------------------------------------------------------- starvation


@pytest.mark.deadline(40)
def test_idle_connections_do_not_lock_the_user_out(shunt):
    """100 idle connections from one address (the one `shunt ctl` uses too): the oldest
    idle ones give way, so ctl status still gets its answer at once."""
    px = shunt("--admin", "127.0.0.1:0")
    socks = idle_connections(admin_port(px), 100)
    try:
        t0 = time.monotonic()
        rc, out, err = ctl("--admin", admin_of(px), "status")
        assert (rc, err) == (0, ""), err
        assert out.startswith("version ")
        assert time.monotonic() - t0 < HEAD_TIMEOUT  # not once the idle ones timed out
        # and again, with the flood still open
        assert api(admin_port(px), "GET", "/api/status")[0] == 200
    finally:
        for s in socks:
            s.close()


@pytest.mark.deadline(40)
def test_idle_connection_is_closed_after_the_head_timeout(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    (s,) = idle_connections(admin_port(px), 1)
    with s:
        assert closed_by_peer(s), f"still open after {HEAD_TIMEOUT * 3} s"


@pytest.mark.deadline(40)
def test_partial_head_gets_408_after_the_head_timeout(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    with peers.Client(admin_port(px), timeout=HEAD_TIMEOUT * 3) as c:
        c.send(b"GET /api/status HTTP/1.1\r\nHost: 127")
        m = c.response()
        assert m.status == 408 and b"head" in m.body
        assert c.response() is None
