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


# ----------------------------------------------------------------------------- the token


def token_file(tmp_path, text, mode=0o600, name="token"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chmod(p, mode)
    return p


def assert_token_is(px, token):
    """<px>'s admin API takes exactly <token>: none and a wrong one get 401."""
    port = admin_port(px)
    st, j, m = api(port, "GET", "/api/status")
    assert st == 401 and m.get("WWW-Authenticate").startswith(b"Bearer")
    assert api(port, "GET", "/api/status", headers=["Authorization: Bearer wrong"])[0] == 401
    assert api(port, "GET", "/api/status", headers=[f"Authorization: Bearer {token}x"])[0] == 401
    assert api(port, "GET", "/api/status", headers=[f"Authorization: Bearer {token}"])[0] == 200


def test_token_from_a_file(shunt, tmp_path):
    px = shunt("--admin", "127.0.0.1:0", "--admin-token-file", token_file(tmp_path, "s3cret\n"))
    assert_token_is(px, "s3cret")  # the trailing newline is not part of it
    assert "s3cret" not in " ".join(px.args)


def test_token_file_with_crlf_and_no_newline(shunt, tmp_path):
    px = shunt("--admin", "127.0.0.1:0", "--admin-token-file",
               token_file(tmp_path, "tok-1\r\n", name="a"))
    assert_token_is(px, "tok-1")
    px = shunt("--admin", "127.0.0.1:0", "--admin-token-file",
               token_file(tmp_path, "tok-2", name="b"))
    assert_token_is(px, "tok-2")


def test_token_from_the_environment(shunt):
    px = shunt("--admin", "127.0.0.1:0", env={"SHUNT_ADMIN_TOKEN": "from-env"})
    assert_token_is(px, "from-env")


def test_command_line_token_wins_over_the_environment(shunt):
    px = shunt("--admin", "127.0.0.1:0", "--admin-token", "from-argv",
               env={"SHUNT_ADMIN_TOKEN": "from-env"})
    assert_token_is(px, "from-argv")


def startup_error(shunt, *args, env=None):
    """Starts a proxy that must refuse to start: returns its one line of stderr."""
    px = shunt("--admin", "127.0.0.1:0", *args, wait_listening=False, env=env)
    assert px.wait_exit() == 2
    assert px.stdout_lines == []
    lines = px.stderr.splitlines()
    assert len(lines) == 1, px.stderr
    return lines[0]


@pytest.mark.parametrize("content", ["", "\n", "\r\n"])
def test_empty_token_file_is_refused(shunt, tmp_path, content):
    p = token_file(tmp_path, content)
    assert startup_error(shunt, "--admin-token-file", p) == \
        f"shunt proxy: --admin-token-file {p}: the file holds no token"


def test_token_file_readable_by_others_is_refused(shunt, tmp_path):
    p = token_file(tmp_path, "s3cret\n", mode=0o644)
    assert startup_error(shunt, "--admin-token-file", p) == \
        (f"shunt proxy: --admin-token-file {p}: other users may read or write it (mode 0644);"
         f" chmod 600 it")


def test_missing_token_file_is_refused(shunt, tmp_path):
    p = tmp_path / "none"
    assert startup_error(shunt, "--admin-token-file", p) == \
        f"shunt proxy: --admin-token-file {p}: cannot open it: no such file or directory"


def test_bad_tokens_are_refused(shunt, tmp_path):
    p = token_file(tmp_path, "two words\n")
    assert startup_error(shunt, "--admin-token-file", p) == (
        f"shunt proxy: --admin-token-file {p}: the token must be printable ASCII without "
        "spaces")
    assert startup_error(shunt, env={"SHUNT_ADMIN_TOKEN": ""}) == \
        "shunt proxy: SHUNT_ADMIN_TOKEN: the token is empty (unset it for no token)"
    assert startup_error(shunt, "--admin-token", "s3cret", "--admin-token-file",
                         token_file(tmp_path, "x\n", name="x")) == \
        "shunt proxy: --admin-token-file: give the token once (--admin-token or --admin-token-file)"


def test_ctl_token_file(shunt, tmp_path):
    px = shunt("--admin", "127.0.0.1:0", "--admin-token-file", token_file(tmp_path, "s3cret\n"))
    assert ctl("--admin", admin_of(px), "--token-file", tmp_path / "token", "status")[0] == 0
    assert ctl("--admin", admin_of(px), "--token-file=" + str(tmp_path / "token"), "status")[0] == 0
    wrong = token_file(tmp_path, "nope\n", name="wrong")
    rc, out, err = ctl("--admin", admin_of(px), "--token-file", wrong, "status")
    assert (rc, out, err) == (1, "", "shunt ctl: wrong token\n")
    empty = token_file(tmp_path, "\n", name="empty")
    rc, out, err = ctl("--admin", admin_of(px), "--token-file", empty, "status")
    assert (rc, out, err) == (2, "", f"shunt ctl: --token-file {empty}: the file holds no "
                                     "token\n(`shunt ctl --help` tells more)\n")


def test_token_is_not_recorded_in_the_capture(shunt, tmp_path):
    import sqlite3

    cap = tmp_path / "cap.db"
    px = shunt("--admin", "127.0.0.1:0", "--admin-token", "s3cret", "--capture", cap)
    px.signal(__import__("signal").SIGTERM)
    assert px.wait_exit() == 0
    with sqlite3.connect(cap) as c:
        (line,) = c.execute("SELECT command_line FROM capture").fetchone()
    assert "s3cret" not in line and "--admin-token ***" in line, line


# ----------------------------------------------------------------------------- ports in use


def in_use_error(shunt, listen, *args):
    """Starts a proxy on <listen> (ADDR:PORT, taken): it must exit 2 with one line."""
    px = shunt(*args, listen=listen, wait_listening=False)
    assert px.wait_exit() == 2
    assert px.stdout_lines == []
    return px.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_second_shunt_on_the_same_port_is_refused(shunt, origin, tmp_path, host):
    """SO_REUSEPORT would let it join the first one's sockets, and the kernel would spread the
    connections over the two processes."""
    first = shunt("--workers", "2", listen=f"[{host}]:0" if ":" in host else f"{host}:0")
    where = f"[{host}]:{first.port}" if ":" in host else f"{host}:{first.port}"
    cap = tmp_path / "second.db"
    err = in_use_error(shunt, where, "--workers", "2", "--capture", cap)
    assert err == f"shunt proxy: cannot listen on {where}: address already in use (another shunt?)\n"
    assert not cap.exists()  # refused before anything was made
    with first.client() as c:  # the first one serves on
        assert c.exchange(peers.get(origin.host, "/")).raw == peers.OK


def test_port_taken_by_another_program_is_refused(shunt):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        err = in_use_error(shunt, f"127.0.0.1:{port}")
        assert err == (f"shunt proxy: cannot listen on 127.0.0.1:{port}: address already in use "
                       "(another shunt?)\n")


def test_port_bound_by_a_reuseport_program_is_refused(shunt):
    """A listener that itself set SO_REUSEPORT (as shunt's workers do) is found too."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        err = in_use_error(shunt, f"127.0.0.1:{port}")
        assert "address already in use" in err


def test_second_admin_api_on_the_same_port_is_refused(shunt):
    first = shunt("--admin", "127.0.0.1:0")
    adm = admin_of(first)
    px = shunt("--admin", adm, wait_listening=False)
    assert px.wait_exit() == 2
    assert px.stderr.splitlines() == [
        f"shunt proxy: --admin {adm}: cannot listen on {adm} for the admin API: address "
        "already in use (another shunt?)"]


def test_many_workers_on_an_ephemeral_port(shunt, origin):
    """Port 0: the port picked is shared by every worker, and a restart on it works (the
    connections of the first run, in TIME_WAIT, do not count as the port being in use)."""
    px = shunt("--workers", "4")
    port = px.port
    for _ in range(8):
        with px.client() as c:
            assert c.exchange(peers.get(origin.host, "/")).raw == peers.OK
    px.signal(__import__("signal").SIGTERM)
    assert px.wait_exit() == 0
    again = shunt("--workers", "4", listen=f"127.0.0.1:{port}")
    with again.client() as c:
        assert c.exchange(peers.get(origin.host, "/")).raw == peers.OK
