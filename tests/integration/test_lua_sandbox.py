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
