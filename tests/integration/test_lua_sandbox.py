"""test_lua_sandbox.py - the Lua sandbox keeps its promises against hostile rules (issue 10):
s:respond() answers of any size reach the client byte for byte, C functions exposed to Lua
check their arguments, the instruction budget holds in coroutines, string patterns, finalizers
and reload, the memory limit covers what rules make the C side hold, and the known crashes of
Debian's Lua 5.4.4 fail as rule errors. Each failing exchange fails alone: another connection
on the same worker (--workers 1) is still answered promptly."""
import re
import sqlite3
import time

import pytest

import peers
from peers import get, origin_form, reply_with, response


def rules_file(tmp_path, text, name="rules.lua"):
    p = tmp_path / name
    p.write_text(text)
    return p


def errors_of(cap):
    with sqlite3.connect(cap) as db:
        return [w for (w,) in db.execute("SELECT what FROM changes WHERE what LIKE 'error:%'"
                                         " ORDER BY id")]


def stop(px):
    px.signal(15)
    assert px.wait_exit() == 0


# ----------------------------------------------------------------------------- s:respond sizes

SIZES = [1024, 64 * 1024, 1024 * 1024]


@pytest.mark.parametrize("size", SIZES, ids=["1KB", "64KB", "1MB"])
def test_respond_with_large_headers_and_body_sends_the_exact_bytes(shunt, tmp_path, size):
    """A redirect rule with a long Location: the header block passes luaL_Buffer's first
    box, which used to land in the wrong stack slot and be freed while still written to."""
    rules = rules_file(tmp_path, f"""\
local n = {size}
function on_request(s)
  local url = "http://example.test/" .. string.rep("a", n)
  s:respond(302, {{Location = url, ["X-Fill"] = string.rep("b", n),
                  ["X-Other"] = "z"}}, string.rep("c", n))
end
""")
    px = shunt("--rules", rules, "--workers", "1")
    a, b, c = b"a" * size, b"b" * size, b"c" * size
    want = (b"HTTP/1.1 302 Found\r\nLocation: http://example.test/" + a + b"\r\n"
            b"X-Fill: " + b + b"\r\nX-Other: z\r\nContent-Length: " + str(size).encode() +
            b"\r\n\r\n" + c)
    with px.client() as cl:
        cl.send(get("127.0.0.1:1", "/"))
        got = cl.r.read_exact(len(want))
    assert got == want


# ----------------------------------------------------------------------------- the budget

RUNAWAY = """\
function on_request(s)
  s.request.headers:set("X-Touched", "1")
  local url = s.request.url
  if url:find("/coroutines") then
    while true do  -- each coroutine used to start with a fresh million instructions
      local co = coroutine.wrap(function() local n = 0 while n < 900000 do n = n + 1 end end)
      pcall(co)
    end
  elseif url:find("/kept") then
    kept = kept or coroutine.create(function() while true do end end)
    coroutine.resume(kept)
  elseif url:find("/pattern") then
    string.find(string.rep("a", 300), string.rep(".-", 30) .. "b")
  elseif url:find("/method") then
    local subject = string.rep("a", 300)
    subject:match(string.rep("(.-)", 30) .. "b")
  elseif url:find("/gsub") then
    string.gsub(string.rep("a", 300), string.rep("a-", 30) .. "b", "x")
  elseif url:find("/gmatch") then
    for _ in string.rep("a", 300):gmatch(string.rep("a*", 30) .. "b") do end
  elseif url:find("/close") then
    local x <close> = setmetatable({}, {__close = function() while true do end end})
  elseif url:find("/shortthreads") then
    -- every coroutine ends before its count hook would first fire (1000 instructions), so
    -- nothing was charged: 80^3 of them held the worker for seconds on no budget at all
    local function leaf() local x = 0 for j = 1, 250 do x = x + j end end
    local function work(d)
      if d == 0 then return leaf() end
      for i = 1, 80 do coroutine.wrap(work)(d - 1) end
    end
    work(4)
  end
end
"""


def assert_fails_alone(px, origin, path, want_error, cap=None):
    """Sends <path> on one connection, a plain request on another of the same worker: the
    plain one is answered promptly, the hostile one passes unchanged, its error logged."""
    req = get(origin.host, path)
    with px.client() as hostile, px.client() as other:
        t = time.monotonic()
        hostile.send(req)
        time.sleep(0)  # the hostile request goes first on the one worker
        other.send(get(origin.host, "/other"))
        assert other.response().status == 200
        assert hostile.response().status == 200
        assert time.monotonic() - t < 10
    got = [r for c in origin.conns for r in c.requests if r.raw.startswith(origin_form(req))]
    assert got and got[0].get("X-Touched") is None  # the exchange was rolled back
    px.wait_stderr(want_error)


@pytest.mark.parametrize("path,error", [
    ("/coroutines", r"rules\.lua:\d+: instruction limit exceeded"),
    ("/kept", r"rules\.lua:\d+: instruction limit exceeded"),
    ("/pattern", r"rules\.lua:13: instruction limit exceeded in a string pattern"),
    ("/method", r"rules\.lua:16: instruction limit exceeded in a string pattern"),
    ("/gsub", r"rules\.lua:18: instruction limit exceeded in a string pattern"),
    ("/gmatch", r"rules\.lua:20: instruction limit exceeded in a string pattern"),
    ("/close", r"rules\.lua:22: instruction limit exceeded"),
    ("/shortthreads", r"rules\.lua:\d+: instruction limit exceeded"),
])
def test_runaway_rule_fails_its_exchange_alone(shunt, origin, tmp_path, path, error):
    px = shunt("--rules", rules_file(tmp_path, RUNAWAY), "--workers", "1")
    assert_fails_alone(px, origin, path, error)


ENDLESS_GC = """\
local function forever() while true do end end
keep = setmetatable({}, {__gc = forever})
function on_request(s) s.request.headers:set("X-Rules", "gc") end
"""


def test_endless_finalizer_is_refused_at_startup_and_reload(shunt, origin, tmp_path):
    """Lua runs finalizers with hooks off: no budget stops one, at a collection or when a
    state is closed (after the check at startup, at each reload). The sandbox refuses __gc,
    so such a file fails to load instead of hanging the proxy."""
    rules = rules_file(tmp_path, ENDLESS_GC)
    px = shunt("--rules", rules, wait_listening=False)
    assert px.wait_exit() == 2
    assert "rules.lua:2: setmetatable: __gc and __mode are not allowed (sandbox)" in px.stderr
    rules.write_text('function on_request(s) s.request.headers:set("X-Rules", "1") end\n')
    px = shunt("--rules", rules, "--workers", "1")
    rules.write_text(ENDLESS_GC)
    px.signal(1)  # SIGHUP
    px.wait_stderr(r"reload: rules\.lua:2: setmetatable: __gc and __mode are not allowed")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).status == 200
    assert origin.conns[0].requests[0].get("X-Rules") == b"1"  # the old rules kept running
    px.signalled = None


def test_sandbox_refuses_finalizers_and_weak_tables(shunt, origin, tmp_path):
    rules = rules_file(tmp_path, """\
function on_request(s)
  local url = s.request.url
  s.request.headers:set("X-Touched", "1")
  if url:find("/gc") then setmetatable({}, {__gc = function() end}) end
  if url:find("/mode") then setmetatable({}, {__mode = "k"}) end
  if url:find("/later") then
    local mt = {}
    setmetatable({}, mt)
    mt.__mode = "v"
  end
  if url:find("/raw") then
    local mt = {}
    setmetatable({}, mt)
    rawset(mt, "__gc", print)
  end
  if url:find("/meta") then
    setmetatable({}, setmetatable({}, {__index = {}}))
  end
end
""")
    cap = tmp_path / "c.db"
    px = shunt("--rules", rules, "--capture", cap)
    with px.client() as c:
        for path in ("/gc", "/mode", "/later", "/raw", "/meta", "/fine"):
            assert c.exchange(get(origin.host, path)).status == 200
    got = [r for c in origin.conns for r in c.requests]
    assert [r.get("X-Touched") for r in got] == [None] * 5 + [b"1"]
    stop(px)
    assert errors_of(cap) == [
        "error: rules.lua:4: setmetatable: __gc and __mode are not allowed (sandbox)",
        "error: rules.lua:5: setmetatable: __gc and __mode are not allowed (sandbox)",
        "error: rules.lua:9: __mode cannot be set in a metatable (sandbox)",
        "error: rules.lua:14: __gc cannot be set in a metatable (sandbox)",
        "error: rules.lua:17: setmetatable: a table with a metatable of its own cannot be a"
        " metatable (sandbox)",
    ]


# ----------------------------------------------------------------------------- memory


def test_header_edits_past_the_memory_limit_fail_the_exchange_alone(shunt, origin, tmp_path):
    """Every h:set() of a new value leaves the old line in the edit's store: a loop of 1 MiB
    values grew it until the process aborted ("out of memory"), taking every connection."""
    rules = rules_file(tmp_path, """\
local big = string.rep("v", 1024 * 1024)
function on_request(s)
  s.request.headers:set("X-Touched", "1")
  if s.request.url:find("/grow") then
    for i = 1, 100000 do s.request.headers:set("X-Big", big .. i) end
  end
end
""")
    px = shunt("--rules", rules, "--workers", "1")
    assert_fails_alone(px, origin, "/grow",
                       r"rules\.lua:5: set X-Big: not enough memory \(rules hold at most 64 MiB\)")
    with px.client() as c:  # and again: the memory came back
        assert c.exchange(get(origin.host, "/grow")).status == 200
    px.wait_stderr(r"set X-Big: not enough memory", count=2)


RESPOND_TOSTRING = """\
function on_request(s)
  local h, a, others = {}, "A" .. string.rep("a", 100), {}
  for i = 1, 8 do others[i] = "B" .. string.rep("b", 100) .. i end
  -- a value whose __tostring empties the table and makes garbage while the sorted names
  -- are in use: it used to free the name strings under s:respond() (ASan: use after free)
  local victim = setmetatable({}, {__tostring = function()
    for i = 1, 8 do h[others[i]] = nil end
    others = nil
    local j
    for k = 1, 400 do j = string.rep("x", 100000 + k) end
    for k = 1, 20000 do j = {k} end
    return "v"
  end})
  h[a] = victim
  for i = 1, 8 do h[others[i]] = "val" .. i end
  s:respond(200, h, "body")
end
"""


def test_respond_takes_only_strings_and_numbers_as_header_values(shunt, origin, tmp_path):
    cap = tmp_path / "c.db"
    px = shunt("--rules", rules_file(tmp_path, RESPOND_TOSTRING), "--workers", "1",
               "--capture", cap)
    with px.client() as c:
        r = c.exchange(get(origin.host, "/"))
    assert r.status == 200 and r.body == b"ok"  # the rule failed: on to the server
    px.wait_stderr(r"must be a string or a number")
    stop(px)
    assert any("must be a string or a number" in e for e in errors_of(cap))


FRAMING_EDITS = """\
function on_request(s)
  local u = s.request.url
  if u:find("/set") then s.request.headers:set("Content-Length", "0")
  elseif u:find("/add") then s.request.headers:add("Transfer-Encoding", "chunked")
  elseif u:find("/remove") then s.request.headers:remove("content-length")
  elseif u:find("/nil") then s.request.headers:set("Transfer-Encoding", nil) end
end
function on_response(s) s.response.headers:set("Content-Length", "1") end
"""


@pytest.mark.parametrize("path", ["/set", "/add", "/remove", "/nil"])
def test_rules_cannot_change_the_framing_of_a_message(shunt, origin, tmp_path, path):
    """A rule that set Content-Length: 0 on a POST sent the origin a body it read as the next
    request (request smuggling). Framing fields are the proxy's: the edit is a rule error,
    the exchange goes on as received."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    px = shunt("--rules", rules_file(tmp_path, FRAMING_EDITS), "--workers", "1")
    req = get(origin.host, path, b"Content-Length: %d\r\n" % len(smuggled), method=b"POST",
              body=smuggled)
    with px.client() as c:
        r = c.exchange(req)
    assert r.status == 200 and r.get("Content-Length") == b"2"
    origin.wait_requests(1)
    assert origin.received == origin_form(req)  # exactly as sent: one request, its body
    px.wait_stderr(r"rules cannot change Content-Length or Transfer-Encoding")
