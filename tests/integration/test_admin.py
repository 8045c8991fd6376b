"""The admin API of `shunt proxy --admin` and `shunt ctl`: status, options listed and switched
while traffic flows, reload, and the refusals (cross-site Origin, foreign Host, token,
malformed requests). Every proxy here listens for the admin on 127.0.0.1:0."""
import json
import re
import subprocess

import pytest

import peers
from peers import OK, get, wait_for

ADMIN_RE = re.compile(r"^shunt: admin API on (\S+)$")
ADD_SERVER = """\
local add_server = option("Add Server Header", false)   -- a named toggle, off by default

function on_response(s)
  if add_server.on and not s.response.headers:get("Server") then
    s.response.headers:add("Server", "Microsoft-IIS/6.0")
  end
end
"""


def admin_of(px):
    """The ADDR:PORT of <px>'s admin API, from its announcement on stdout."""
    line = wait_for(lambda: next((l for l in px.stdout_lines if ADMIN_RE.match(l)), None),
                    what="the 'shunt: admin API on ADDR:PORT' line")
    return ADMIN_RE.match(line).group(1)


def admin_port(px):
    return int(admin_of(px).rsplit(":", 1)[1])


def ctl(*args, env=None):
    """Runs `shunt ctl ARGS`; returns (exit status, stdout, stderr) as text. A sanitizer report
    fails the test."""
    e = {"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1", "PATH": "/usr/bin:/bin"}
    e.update(env or {})
    p = subprocess.run([peers.SHUNT_BIN, "ctl"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=peers.WAIT * 2, stdin=subprocess.DEVNULL, env=e)
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    return p.returncode, p.stdout, p.stderr


def api(port, method, path, body=None, headers=(), host=None):
    """One request on a new connection; returns (status, JSON body or None, Message)."""
    host = host or f"127.0.0.1:{port}"
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
    for h in headers:
        req += h.encode() + b"\r\n"
    if body is not None:
        req += b"Content-Length: %d\r\n" % len(data)
    req += b"Connection: close\r\n\r\n" + data
    with peers.Client(port) as c:
        c.send(req)
        m = c.response()
    assert m is not None, "the admin API closed without answering"
    try:
        j = json.loads(m.body)
    except ValueError:
        j = None
    return m.status, j, m


JSON = "Content-Type: application/json"


def rules_supported():
    out = subprocess.run([peers.SHUNT_BIN, "proxy", "--help"], capture_output=True, text=True)
    return "--rules" in out.stdout


needs_rules = pytest.mark.skipif(not rules_supported(),
                                 reason="`shunt proxy --rules` is not there yet")


# ----------------------------------------------------------------------------- status


def test_status_lines_and_json(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    rc, out, err = ctl("--admin", admin_of(px), "status")
    assert (rc, err) == (0, "")
    keys = [l.split("  ")[0] for l in out.splitlines()]
    assert keys == ["version", "uptime", "connections open", "exchanges", "events dropped",
                    "capture", "rules"]
    rc, out, err = ctl("--admin", admin_of(px), "status", "--json")
    assert rc == 0
    st = json.loads(out)
    assert set(st) == {"uptime_s", "connections_open", "exchanges", "events_dropped", "capture",
                       "rules", "version", "tls"}
    assert st["tls"] is None  # no interception
    assert st["uptime_s"] >= 0 and st["exchanges"] == 0 and st["connections_open"] == 0


def test_status_numbers_move_with_traffic(shunt, origin):
    px = shunt("--admin", "127.0.0.1:0")
    port = admin_port(px)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/a")).raw == OK
        assert c.exchange(get(origin.host, "/b")).raw == OK
        st = wait_for(lambda: (lambda s: s if s["exchanges"] == 2 else None)(
            api(port, "GET", "/api/status")[1]), what="2 exchanges in the status")
        assert st["connections_open"] == 1
    wait_for(lambda: api(port, "GET", "/api/status")[1]["connections_open"] == 0,
             what="the connection to be counted closed")


def test_status_counts_the_leaf_certificates_of_interception(shunt, tmp_path):
    # two CONNECTs to one host: the first makes its leaf, the second finds it in the cache
    env = {"XDG_DATA_HOME": str(tmp_path)}
    px = shunt("--admin", "127.0.0.1:0", "--intercept", env=env)
    ca = tmp_path / "shunt" / "ca.pem"
    wait_for(ca.exists, what="the CA made on first use")
    dead = peers.free_port()  # nothing listens: the request inside ends in shunt's 502
    for _ in range(2):
        p = peers.curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca),
                       "-x", px.proxy_url, f"https://localhost:{dead}/")
        assert p.stdout == b"502", (p.stdout, p.stderr)  # the client trusted the leaf
    st = api(admin_port(px), "GET", "/api/status")[1]
    assert st["tls"]["intercept"] is True
    assert (st["tls"]["leaf_misses"], st["tls"]["leaf_hits"], st["tls"]["leaf_cached"]) == (1, 1, 1)
    assert 0 < st["tls"]["leaf_miss_avg_ms"] <= st["tls"]["leaf_miss_max_ms"]
    rc, out, err = ctl("--admin", admin_of(px), "status")
    assert rc == 0 and re.search(r"^https leaves +1 made \(.* ms at most\), 1 from the cache "
                                 r"\(50\.0% hits\)$", out, re.M), out


def test_status_names_the_capture(shunt, tmp_path):
    cap = tmp_path / "cap.db"
    px = shunt("--admin", "127.0.0.1:0", "--capture", cap)
    assert api(admin_port(px), "GET", "/api/status")[1]["capture"] == str(cap)


# ----------------------------------------------------------------------------- ctl itself


def test_ctl_cannot_reach_the_admin_api():
    port = peers.free_port()
    rc, out, err = ctl("--admin", f"127.0.0.1:{port}", "status")
    assert rc == 2 and out == ""
    assert err == (f"shunt ctl: cannot reach the admin API at 127.0.0.1:{port}: connection "
                   "refused (is shunt proxy running?)\n")


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["option", "x"], ["option", "x", "maybe"],
                                  ["status", "extra"], ["--admin", "nope", "status"],
                                  ["--bogus", "status"], ["--admin"]])
def test_ctl_usage_errors_exit_2(args):
    rc, out, err = ctl(*args)
    assert rc == 2 and out == "" and err.startswith(("shunt ctl: ", "usage: shunt ctl"))


def test_ctl_help():
    rc, out, err = ctl("--help")
    assert rc == 0 and out.startswith("usage: shunt ctl") and err == ""


def test_ctl_options_without_rules(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    rc, out, err = ctl("--admin", admin_of(px), "options")
    assert (rc, err) == (0, "")
    assert out.startswith("no options")
    rc, out, err = ctl("--admin", admin_of(px), "options", "--json")
    assert json.loads(out) == {"options": []}


def test_ctl_unknown_option_is_an_api_error(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    rc, out, err = ctl("--admin", admin_of(px), "option", "No Such Thing", "on")
    assert (rc, out) == (1, "")
    assert err == "shunt ctl: no option named 'No Such Thing'\n"


def test_ctl_reload_without_rules_file(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    rc, out, err = ctl("--admin", admin_of(px), "reload")
    assert (rc, out, err) == (1, "", "shunt ctl: no rules file\n")
    st, j, _ = api(admin_port(px), "POST", "/api/reload", {}, [JSON])
    assert (st, j) == (409, {"error": "no rules file"})


# ----------------------------------------------------------------------------- refusals


def test_cross_site_origin_is_refused(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    port = admin_port(px)
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{port}",
                   f"http://127.0.0.1:{port + 1 if port < 65535 else 1}"):
        st, j, _ = api(port, "POST", "/api/reload", {}, [JSON, f"Origin: {origin}"])
        assert st == 403 and "cross-site" in j["error"], origin
    # its own origin may
    st, j, _ = api(port, "POST", "/api/reload", {}, [JSON, f"Origin: http://localhost:{port}"])
    assert st == 409


def test_foreign_host_is_refused(shunt):
    """DNS rebinding: a page on attacker.example resolved to 127.0.0.1 sends its own name."""
    px = shunt("--admin", "127.0.0.1:0")
    port = admin_port(px)
    st, j, _ = api(port, "GET", "/api/options", host=f"attacker.example:{port}")
    assert st == 403 and "not this admin API's address" in j["error"]
    assert api(port, "GET", "/api/options", host=f"localhost:{port}")[0] == 200
    assert api(port, "GET", "/api/options", host=f"[::1]:{port}")[0] == 200


@pytest.mark.parametrize("body,headers,status,needle", [
    (b'{"on": tru', [JSON], 400, "not valid JSON"),
    (b'{"on": "yes"}', [JSON], 400, "true or false"),
    (b'', [JSON], 400, "JSON object"),
    (b'{"on": true}', [], 415, "Content-Type: application/json"),
    (b'{"on": true}', ["Content-Type: application/x-www-form-urlencoded"], 415, "Content-Type"),
    (b'{"on": true}', ["Content-Type: text/plain"], 415, "Content-Type"),
])
def test_bad_option_requests(shunt, body, headers, status, needle):
    px = shunt("--admin", "127.0.0.1:0")
    st, j, m = api(admin_port(px), "PUT", "/api/options/Add%20Server%20Header", body, headers)
    assert st == status and needle in j["error"]
    assert m.get("Content-Type") == b"application/json"


def test_oversized_requests(shunt):
    px = shunt("--admin", "127.0.0.1:0")
    port = admin_port(px)
    st, j, _ = api(port, "POST", "/api/reload", b"{" + b" " * 70000 + b"}", [JSON])
    assert st == 413 and "65536" in j["error"]
    st, j, _ = api(port, "GET", "/api/status", headers=["X-Big: " + "a" * 17000])
    assert st == 431


def test_token_required_when_set(shunt):
    px = shunt("--admin", "127.0.0.1:0", "--admin-token", "s3cret")
    adm, port = admin_of(px), admin_port(px)
    st, j, m = api(port, "GET", "/api/status")
    assert st == 401 and m.get("WWW-Authenticate").startswith(b"Bearer")
    assert api(port, "GET", "/api/status", headers=["Authorization: Bearer wrong"])[0] == 401
    assert api(port, "GET", "/api/status", headers=["Authorization: Bearer s3cret"])[0] == 200
    rc, out, err = ctl("--admin", adm, "status")
    assert rc == 1 and "token" in err
    assert ctl("--admin", adm, "--token", "s3cret", "status")[0] == 0
    assert ctl("--admin", adm, "status", env={"SHUNT_ADMIN_TOKEN": "s3cret"})[0] == 0


def test_non_loopback_admin_without_token_is_refused(shunt):
    px = shunt("--admin", "0.0.0.0:0", wait_listening=False)
    assert px.wait_exit() == 2
    assert "--admin-token" in px.stderr and px.stdout_lines == []


def test_slow_client_does_not_block_others(shunt):
    """One connection dribbling a head does not keep another from being answered."""
    px = shunt("--admin", "127.0.0.1:0")
    port = admin_port(px)
    with peers.Client(port) as slow:
        slow.send(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1")
        assert api(port, "GET", "/api/status")[0] == 200


# ----------------------------------------------------------------------------- with rules


@needs_rules
def test_switch_option_applies_on_an_open_connection(shunt, origin, tmp_path):
    rules = tmp_path / "rules.lua"
    rules.write_text(ADD_SERVER)
    px = shunt("--admin", "127.0.0.1:0", "--rules", rules)
    adm = admin_of(px)
    rc, out, err = ctl("--admin", adm, "options")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["OPTION             STATE  DEFAULT",
                                "Add Server Header  off    off"]
    with px.client() as c:
        assert c.exchange(get(origin.host, "/1")).get("Server") is None
        assert ctl("--admin", adm, "option", "Add Server Header", "on") == \
            (0, "Add Server Header: on\n", "")
        assert c.exchange(get(origin.host, "/2")).get("Server") == b"Microsoft-IIS/6.0"
        assert ctl("--admin", adm, "option", "Add Server Header", "off")[0] == 0
        assert c.exchange(get(origin.host, "/3")).get("Server") is None
    (conn,) = origin.conns  # one upstream connection throughout
    opts = json.loads(ctl("--admin", adm, "options", "--json")[1])["options"]
    assert opts == [{"name": "Add Server Header", "on": False, "default": False}]


@needs_rules
def test_reload_reports_the_broken_line_and_keeps_the_old_rules(shunt, origin, tmp_path):
    rules = tmp_path / "rules.lua"
    rules.write_text(ADD_SERVER)
    px = shunt("--admin", "127.0.0.1:0", "--rules", rules)
    adm = admin_of(px)
    assert ctl("--admin", adm, "option", "Add Server Header", "on")[0] == 0
    assert ctl("--admin", adm, "reload") == (0, "rules reloaded\n", "")
    rules.write_text(ADD_SERVER + "\nfunction broken(\n")
    rc, out, err = ctl("--admin", adm, "reload")
    assert rc == 1 and out == ""
    assert re.search(r"rules\.lua:\d+:", err), err
    st, j, _ = api(admin_port(px), "POST", "/api/reload", {}, [JSON])
    assert st == 422 and re.search(r"rules\.lua:\d+:", j["error"])
    with px.client() as c:  # the old rules, with the option still on
        assert c.exchange(get(origin.host, "/")).get("Server") == b"Microsoft-IIS/6.0"
