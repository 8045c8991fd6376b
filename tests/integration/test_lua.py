"""test_lua.py - rules in Lua (--rules FILE.lua): the story's rule switched on through the
admin API on an open keep-alive connection, the examples in examples/rules/, errors and
runaway rules leaving the exchange unchanged (and recorded), the sandbox, and reload
(admin API and SIGHUP) keeping the old rules when the new file is broken."""
import json
import re
import signal
import sqlite3
import time
from pathlib import Path

import peers
from peers import get, origin_form, reply_with, response, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
ADMIN_RE = re.compile(r"^shunt: admin API on \S+:(\d+)$")
JSON = "Content-Type: application/json"


def admin_port(px):
    line = wait_for(lambda: next((l for l in px.stdout_lines if ADMIN_RE.match(l)), None),
                    what="the admin API line")
    return int(ADMIN_RE.match(line).group(1))


def api(port, method, path, body=None):
    """One admin request on its own connection: (status, JSON body)."""
    data = b"" if body is None else json.dumps(body).encode()
    req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    if body is not None:
        req += f"{JSON}\r\nContent-Length: {len(data)}\r\n".encode()
    req += b"Connection: close\r\n\r\n" + data
    with peers.Client(port) as c:
        c.send(req)
        m = c.response()
    return m.status, json.loads(m.body) if m.body else None


def set_option(px, name, on):
    st, _ = api(admin_port(px), "PUT", "/api/options/" + name.replace(" ", "%20"), {"on": on})
    assert st == 200, st


def rules_file(tmp_path, text, name="rules.lua"):
    p = tmp_path / name
    p.write_text(text)
    return p


def changes_of(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT in_request, what, by FROM changes ORDER BY id").fetchall()


def requests_of(origin):
    return [r for c in origin.conns for r in c.requests]


def stop(px):
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0


# ----------------------------------------------------------------------------- the story


def test_story_rule_switched_on_applies_to_the_next_response_on_the_same_connection(
        shunt, origin):
    origin.handler = reply_with(response(headers=[b"X-A: 1"], body=b"hi"))
    px = shunt("--rules", EXAMPLES / "add-server-header.lua")
    st, j = api(admin_port(px), "GET", "/api/options")
    assert st == 200 and {"name": "Add Server Header", "on": False, "default": False} in j["options"]
    with px.client() as c:
        off = c.exchange(get(origin.host, "/1"))
        assert off.raw == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
        set_option(px, "Add Server Header", True)
        on = c.exchange(get(origin.host, "/2"))
        assert on.raw == (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n"
                          b"Server: Microsoft-IIS/6.0\r\n\r\nhi")
        set_option(px, "Add Server Header", False)
        assert c.exchange(get(origin.host, "/3")).get("Server") is None
    assert len(origin.conns) == 1  # one keep-alive connection throughout
    st, j = api(admin_port(px), "GET", "/api/status")
    assert j["rules"].endswith("add-server-header.lua")


def test_story_rule_keeps_an_existing_server_header(shunt, origin):
    origin.handler = reply_with(response(headers=[b"server: nginx"], body=b"ok"))
    px = shunt("--rules", EXAMPLES / "add-server-header.lua")
    set_option(px, "Add Server Header", True)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).all("Server") == [b"nginx"]


# ----------------------------------------------------------------------------- examples


def test_urlscan_example_removes_the_server_header(shunt, origin):
    origin.handler = reply_with(
        b"HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/6.0\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nok")
    px = shunt("--rules", EXAMPLES / "urlscan-remove-server.lua")
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/"))
    assert resp.raw == b"HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nok"


def test_force_connection_close_example(shunt, origin):
    origin.handler = reply_with(response(headers=[b"Connection: keep-alive"], body=b"ok"))
    px = shunt("--rules", EXAMPLES / "force-connection-close.lua")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).all("Connection") == [b"close"]
        c.wait_eof()  # the proxy keeps its word: the connection ends after that response
    assert len(origin.conns) == 1
    set_option(px, "Force Connection: close", False)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).all("Connection") == [b"keep-alive"]
        assert c.exchange(get(origin.host, "/")).all("Connection") == [b"keep-alive"]
    assert len(origin.conns) == 2


# ----------------------------------------------------------------------------- the API


def test_request_fields_headers_and_changes_recorded_with_their_line(shunt, origin, tmp_path):
    rules = rules_file(tmp_path, """\
local seen = {}
function on_request(s)
  local h = s.request.headers
  h:set("X-Method", s.request.method)
  h:set("X-Url", s.request.url)
  h:set("X-Conn", tostring(s.conn.exchanges))
  h:add("X-All", table.concat(h:get_all("x-many"), ","))
  h:remove("X-Secret")
end
function on_response(s)
  s.response.headers:set("X-Status", tostring(s.response.status))
  s:flag("saw " .. s.request.url)
end
""")
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap, "--rules", rules)
    req = get(origin.host, "/p?q=1", extra=b"X-Many: a\r\nX-Secret: s\r\nx-many: b\r\n")
    with px.client() as c:
        resp = c.exchange(req)
        c.exchange(get(origin.host, "/again"))
    assert resp.get("X-Status") == b"200"
    got = bytes(origin.conns[0].received)
    first = got[: got.index(b"\r\n\r\n") + 4]
    url = f"http://{origin.host}/p?q=1".encode()
    assert first.endswith(b"X-Many: a\r\nx-many: b\r\nX-Method: GET\r\nX-Url: " + url +
                          b"\r\nX-Conn: 0\r\nX-All: a,b\r\n\r\n"), first
    assert b"X-Secret" not in first and b"X-Conn: 1\r\n" in got[len(first):]
    stop(px)
    ch = changes_of(cap)
    assert (1, "set X-Method: GET", "rules.lua:4") in ch
    assert (1, "remove X-Secret", "rules.lua:8") in ch
    assert (0, "set X-Status: 200", "rules.lua:11") in ch
    assert (0, f"flag: saw http://{origin.host}/p?q=1", "rules.lua") in ch


def test_header_injection_is_refused_and_the_exchange_passes_unchanged(shunt, origin,
                                                                       tmp_path):
    rules = """\
function on_request(s)
  s.request.headers:add("X-Ok", "1")
  s.request.headers:add("X-Evil", "a\\r\\nInjected: 1")
end
"""
    px = shunt("--rules", rules_file(tmp_path, rules))
    req = get(origin.host, "/")
    with px.client() as c:
        assert c.exchange(req).status == 200
    assert bytes(origin.conns[0].received) == origin_form(req)
    px.wait_stderr(r"rules\.lua:3: add X-Evil: not a header name, or the value holds CR")


# ----------------------------------------------------------------------------- failures


def test_a_rule_that_raises_leaves_the_exchange_unchanged_and_is_recorded(shunt, origin,
                                                                           tmp_path):
    origin.handler = reply_with(response(headers=[b"Server: nginx"], body=b"ok"))
    rules = rules_file(tmp_path, """\
function on_request(s)
  s.request.headers:set("X-Before", "1")
  s.request.headers:remove("Host")
  if s.request.url:find("boom") then
    error("boom: " .. s.request.url)
  end
end
function on_response(s)
  s.response.headers:remove("Server")
  local t = nil
  return t.field
end
""")
    cap = tmp_path / "c.db"
    px = shunt("--capture", cap, "--rules", rules)
    req = get(origin.host, "/boom")
    with px.client() as c:
        resp = c.exchange(req)
        assert resp.raw == response(headers=[b"Server: nginx"], body=b"ok")  # unchanged
        ok = c.exchange(get(origin.host, "/fine"))  # the proxy goes on
    assert ok.get("Server") == b"nginx"
    got = bytes(origin.conns[0].received)
    assert got.startswith(origin_form(req))  # no X-Before, Host still there
    px.wait_stderr(r"rules: rules\.lua:5: boom: http://")
    px.wait_stderr(r"rules: rules\.lua:11: attempt to index a nil value")
    stop(px)
    ch = changes_of(cap)
    errors = [c for c in ch if c[1].startswith("error: ")]
    assert (1, f"error: rules.lua:5: boom: http://{origin.host}/boom", "rules.lua") in errors
    assert any(c[0] == 0 and "rules.lua:11: attempt to index a nil value" in c[1] for c in errors)
    assert (1, "set X-Before: 1", "rules.lua:2") in ch  # the /fine request
    assert ch.count((1, "set X-Before: 1", "rules.lua:2")) == 1  # not for /boom


def test_a_runaway_rule_is_stopped_even_when_it_catches_the_error(shunt, origin, tmp_path):
    rules = rules_file(tmp_path, """\
function on_request(s)
  s.request.headers:set("X-Touched", "1")
  if s.request.url:find("forever") then
    while true do
      pcall(function() while true do end end)
    end
  end
end
""")
    px = shunt("--rules", rules)
    req = get(origin.host, "/forever")
    with px.client() as c:
        t = time.monotonic()
        assert c.exchange(req).status == 200
        assert time.monotonic() - t < 5
        c.exchange(get(origin.host, "/next"))
    got = bytes(origin.conns[0].received)
    assert got.startswith(origin_form(req))
    assert b"X-Touched: 1" in got[len(origin_form(req)):]
    px.wait_stderr(r"rules\.lua:\d+: instruction limit exceeded")


def test_sandbox_has_no_io_os_execute_load_or_require_outside(shunt, origin, tmp_path):
    (tmp_path / "helper.lua").write_text("return { value = 'from-helper' }\n")
    rules = rules_file(tmp_path, """\
local helper = require("helper")
function on_request(s)
  local h = s.request.headers
  h:set("X-Helper", helper.value)
  h:set("X-Time", type(os.time()) .. "," .. type(os.clock()) .. "," .. type(os.date("%Y")))
  h:set("X-Missing", tostring(io) .. "," .. tostring(os.execute) .. "," .. tostring(load) ..
        "," .. tostring(loadfile) .. "," .. tostring(dofile) .. "," .. tostring(os.getenv))
  if s.request.url:find("io") then io.open("/etc/passwd") end
  if s.request.url:find("exec") then os.execute("true") end
  if s.request.url:find("req") then require("../../etc/passwd") end
end
""")
    px = shunt("--rules", rules)
    with px.client() as c:
        for path in ("/fine", "/io", "/exec", "/req"):
            c.exchange(get(origin.host, path))
    got = bytes(origin.conns[0].received)
    assert got.count(b"X-Helper: from-helper") == 1
    assert b"X-Time: number,number,string\r\n" in got
    assert b"X-Missing: nil,nil,nil,nil,nil,nil\r\n" in got
    px.wait_stderr(r"rules\.lua:8: attempt to index a nil value \(global 'io'\)")
    px.wait_stderr(r"rules\.lua:9: attempt to call a nil value \(field 'execute'\)")
    px.wait_stderr(r"rules\.lua:10: require '\.\./\.\./etc/passwd': not a module name")


def test_unsafe_lua_lifts_the_sandbox(shunt, origin, tmp_path):
    rules = rules_file(tmp_path, """\
function on_request(s)
  s.request.headers:set("X-Io", type(io.open) .. "," .. type(os.getenv))
end
""")
    px = shunt("--rules", rules, "--unsafe-lua")
    with px.client() as c:
        c.exchange(get(origin.host, "/"))
    assert b"X-Io: function,function\r\n" in bytes(origin.conns[0].received)


def test_a_broken_file_at_start_is_refused_with_its_line(shunt, tmp_path):
    rules = rules_file(tmp_path, "function on_response(s)\n  local x = = 1\nend\n")
    px = shunt("--rules", rules, wait_listening=False)
    assert px.wait_exit() == 2
    assert re.search(r"--rules rules\.lua:2: unexpected symbol near '='", px.stderr), px.stderr
    px = shunt("--rules", tmp_path / "missing.lua", wait_listening=False)
    assert px.wait_exit() == 2 and "cannot open" in px.stderr
    px = shunt("--rules", rules_file(tmp_path, "error('at load')\n", "top.lua"),
               wait_listening=False)
    assert px.wait_exit() == 2 and "top.lua:1: at load" in px.stderr


# ----------------------------------------------------------------------------- reload

V1 = """\
local tag = option("Tag Responses", false)
function on_response(s)
  if tag.on then s.response.headers:set("X-Rules", "v1") end
end
"""
V2 = V1.replace("v1", "v2")


def test_admin_reload_swaps_the_rules_on_an_open_connection_and_keeps_options(shunt, origin,
                                                                             tmp_path):
    rules = rules_file(tmp_path, V1)
    px = shunt("--workers", "2", "--rules", rules)
    port = admin_port(px)
    set_option(px, "Tag Responses", True)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v1"
        rules.write_text(V1 + "\nfunction broken(\n")
        st, j = api(port, "POST", "/api/reload", {})
        assert st == 422 and re.match(r"rules\.lua:\d+: .*", j["error"]), j
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v1"  # the old rules
        rules.write_text(V2)
        st, j = api(port, "POST", "/api/reload", {})
        assert st == 200, j
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v2"  # same connection
    assert len(origin.conns) == 1
    st, j = api(port, "GET", "/api/options")
    assert {"name": "Tag Responses", "on": True, "default": False} in j["options"]


def test_sighup_reloads_and_a_broken_file_keeps_the_old_rules(shunt, origin, tmp_path):
    rules = rules_file(tmp_path, V1.replace("false", "true"))
    px = shunt("--rules", rules)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v1"
        rules.write_text("function on_response(s)\n  x = = 2\nend\n")
        px.signal(signal.SIGHUP)
        px.wait_stderr(r"reload: rules\.lua:2: unexpected symbol near '=' \(the old rules keep")
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v1"
        rules.write_text(V2.replace("false", "true"))
        px.signal(signal.SIGHUP)
        px.wait_stderr(r"reload: rules reloaded from")
        assert c.exchange(get(origin.host, "/")).get("X-Rules") == b"v2"
    px.signalled = None  # teardown's SIGTERM: HUP was ours, not an exit


# ----------------------------------------------------------------------------- answering, holding, connections


def test_canned_response_example_answers_without_the_server(shunt, origin, tmp_path):
    origin.handler = reply_with(response(body=b"from the origin"))
    cap = tmp_path / "c.db"
    px = shunt("--rules", EXAMPLES / "canned-response.lua", "--capture", cap)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/api/x")).body == b"from the origin"
        set_option(px, "Serve Maintenance Page", True)
        r = c.exchange(get(origin.host, "/api/y"))
        assert r.status == 503
        assert r.get("Content-Type") == b"application/json"
        assert r.get("Retry-After") == b"120"
        assert r.body == b'{"error": "down for maintenance"}\n'
        assert c.exchange(get(origin.host, "/other")).body == b"from the origin"
    stop(px)
    assert len(requests_of(origin)) == 2  # /api/y never reached it
    whats = [w for _, w, _ in changes_of(cap)]
    assert "respond 503 without the server" in whats
    assert "flag: answered by canned-response.lua" in whats


def test_respond_before_any_connection_is_opened(shunt, tmp_path):
    """s:respond answers even when no server could be reached: nothing is connected."""
    rules = rules_file(tmp_path, """\
function on_request(s)
  s:respond(200, {{"X-One", "1"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"},
                  {"Content-Length", "999"}}, "hi " .. s.request.version)
end
""")
    px = shunt("--rules", rules)
    with px.client() as c:
        r = c.exchange(get("127.0.0.1:1", "/"))  # port 1: nothing listens
        assert r.status == 200
        assert r.body == b"hi HTTP/1.1"
        assert r.all("Set-Cookie") == [b"a=1", b"b=2"]
        assert r.all("Content-Length") == [b"11"]  # framing is the proxy's
        r = c.exchange(get("127.0.0.1:1", "/again"))  # the connection lives on
        assert r.status == 200


def test_respond_with_bad_arguments_leaves_the_exchange_unchanged(shunt, origin, tmp_path):
    origin.handler = reply_with(response(body=b"real"))
    rules = rules_file(tmp_path, """\
function on_request(s)
  if s.request.url:find("/inj") then s:respond(200, {["X-A"] = "a\\r\\nX-B: b"}, "x") end
  if s.request.url:find("/status") then s:respond(42) end
  if s.request.url:find("/nul") then s:respond(200, {["X\0A"] = "v"}, "x") end
  if s.request.url:find("/novalue") then s:respond(200, {{"X-A"}}, "x") end
end
function on_response(s)
  s:respond(200)
end
""")
    cap = tmp_path / "c.db"
    px = shunt("--rules", rules, "--capture", cap)
    with px.client() as c:
        for path in ("/inj", "/status", "/nul", "/novalue", "/plain"):
            r = c.exchange(get(origin.host, path))
            assert r.body == b"real" and r.get("X-B") is None
    stop(px)
    errors = [w for _, w, _ in changes_of(cap) if w.startswith("error:")]
    assert any("holds CR, LF or NUL" in e for e in errors), errors
    assert any("status 42 is not between 200 and 599" in e for e in errors), errors
    assert any("is not a header name" in e for e in errors), errors
    assert any("header X-A has no value" in e for e in errors), errors
    assert any("s:respond is for on_request" in e for e in errors), errors


def test_added_latency_example_holds_request_and_response(shunt, origin, tmp_path):
    origin.handler = reply_with(response(body=b"ok"))
    cap = tmp_path / "c.db"
    px = shunt("--rules", EXAMPLES / "added-latency.lua", "--capture", cap)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/fast")).body == b"ok"
        set_option(px, "Slow Network", True)
        for path in ("/slow1", "/slow2"):  # the same connection, held each time
            t = time.monotonic()
            assert c.exchange(get(origin.host, path)).body == b"ok"
            # 150 ms each way; libuv's timers count from the loop's cached
            # millisecond clock, so a hold may end a few ms before 150 ms of
            # wall time: the bound says "held", not "held exactly".
            assert time.monotonic() - t >= 0.28
    stop(px)
    assert len(origin.conns) == 1
    with sqlite3.connect(cap) as db:
        held = db.execute("SELECT e.url, c.in_request, c.what FROM changes c JOIN exchanges e"
                          " ON e.id = c.exchange_id WHERE c.what LIKE 'hold %' ORDER BY c.id").fetchall()
    assert [(u.rsplit("/", 1)[1], r, w) for u, r, w in held] == [
        ("slow1", 1, "hold the request 150 ms"), ("slow1", 0, "hold the response 150 ms"),
        ("slow2", 1, "hold the request 150 ms"), ("slow2", 0, "hold the response 150 ms")]


def test_delay_holds_only_its_exchange_and_survives_the_server_closing(shunt, origin, tmp_path):
    """A held response framed by the server's close still arrives whole."""
    def handler(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\n\r\nclose-framed body")
        conn.close()

    origin.handler = handler
    rules = rules_file(tmp_path, "function on_response(s) s:delay(200) end\n")
    px = shunt("--rules", rules)
    with px.client() as c:
        c.send(get(origin.host, "/"))
        r = c.response()
        assert r.body == b"close-framed body"
        c.wait_eof()


def test_connection_hooks_and_conn_fields(shunt, origin, tmp_path):
    origin.handler = reply_with(
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n")
    rules = rules_file(tmp_path, """\
local opened = {}
function on_connect(conn) opened[conn.id] = conn.client_port; log("open", conn.id) end
function on_request(s)
  s.request.headers:set("X-Seen-Port", tostring(opened[s.conn.id] == s.conn.client_port))
  s.request.headers:set("X-Auth", s.conn.auth .. "/" .. s.conn.auth_scheme)
end
function on_response(s)
  s.response.headers:set("X-Reason", s.response.reason)
  s.response.headers:set("X-Auth", s.conn.auth .. "/" .. s.conn.auth_scheme)
end
function on_close(conn) log("closed", conn.id, conn.exchanges, conn.closer, conn.how) end
""")
    px = shunt("--rules", rules, "-v")
    with px.client() as c:
        r = c.exchange(get(origin.host, "/"))
        assert r.get("X-Reason") == b"Unauthorized"
        assert r.get("X-Auth") == b"challenged/NTLM"
        c.exchange(get(origin.host, "/", extra=b"Authorization: NTLM TlRMTVNTUAABAAAA\r\n"))
    reqs = requests_of(origin)
    assert reqs[0].get("X-Seen-Port") == b"true"
    assert reqs[0].get("X-Auth") == b"none/"
    assert reqs[1].get("X-Auth") == b"handshake/NTLM"
    px.wait_stderr(r"closed 1 2 client FIN")
    assert re.search(r"rules\.lua:2: open 1", px.stderr)


def test_force_close_on_a_request_reaches_the_server(shunt, origin, tmp_path):
    origin.handler = reply_with(response(body=b"ok"))
    rules = rules_file(tmp_path, 'function on_request(s) s.request.headers:set("Connection", "close") end\n')
    px = shunt("--rules", rules)
    with px.client() as c:
        c.exchange(get(origin.host, "/"))
    assert requests_of(origin)[0].get("Connection") == b"close"


def test_held_response_that_a_rule_closes_still_ends_the_connection(shunt, origin, tmp_path):
    origin.handler = reply_with(response(body=b"ok"))
    rules = rules_file(tmp_path, """\
function on_response(s)
  s.response.headers:set("Connection", "close")
  s:delay(50)
end
""")
    px = shunt("--rules", rules)
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).all("Connection") == [b"close"]
        c.wait_eof()
