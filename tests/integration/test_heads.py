"""test_heads.py - one builder makes the head that goes upstream and the one that goes to
the client, rules or not: a rule that changes nothing leaves the bytes the origin and the
client get as they are without rules. Before, heads went through an edit path when rules
were loaded and a fast path otherwise, and the two disagreed: a Host differing from the
target's only in case was rewritten with rules and kept without, and a repeated
Content-Length kept its own spelling with rules."""
import peers
from peers import reply_with


def rules_file(tmp_path):
    p = tmp_path / "rules.lua"
    p.write_text("function on_request(s) end\nfunction on_response(s) end\n")
    return p


def test_heads_are_the_same_with_a_rule_that_changes_nothing(shunt, origin, tmp_path):
    port = int(origin.host.rsplit(":", 1)[1])
    origin.handler = reply_with(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok")
    req = (b"POST http://localhost:%d/p HTTP/1.1\r\nHost: LOCALHOST:%d\r\n"
           b"content-length: 2\r\nContent-Length: 2\r\nProxy-Connection: keep-alive\r\n\r\nhi"
           % (port, port))
    results = []
    for args in ([], ["--rules", rules_file(tmp_path)]):
        px = shunt(*args)
        with px.client() as c:
            c.send(req)
            down = c.response().raw
        origin.wait_requests(len(results) + 1)
        up = [r for conn in origin.conns for r in conn.requests][-1].raw
        results.append((up, down))
    (plain_up, plain_down), (ruled_up, ruled_down) = results
    assert plain_up == (b"POST /p HTTP/1.1\r\nHost: LOCALHOST:%d\r\nContent-Length: 2\r\n\r\nhi"
                        % port)
    assert ruled_up == plain_up
    assert plain_down == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok"
    assert ruled_down == plain_down
