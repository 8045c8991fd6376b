"""`shunt diff A B`: the story's two traces recorded with the real lab (`shunt lab origin` and
`shunt lab client` through `shunt proxy --capture`), compared in both orders, as captures and
as HARs; hand-written HARs for what must not rank first, path and query folding, statuses
and requests seen on one side only; exit statuses (0 no difference, 1 differences, 2 bad
input) and the --json shape (docs/diff.md)."""
import json
import os
import sqlite3
import subprocess

import pytest

import peers
from test_diagnose import har_entry as diagnose_har_entry, write_har


def diff(*args):
    """Runs `shunt diff ARGS`; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([peers.SHUNT_BIN, "diff"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=peers.WAIT, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode >= 0, f"diff killed by signal {-p.returncode}: {p.stderr}"
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    return p.returncode, p.stdout, p.stderr


def diff_json(a, b):
    """The JSON document of `shunt diff A B --json`, its exit status checked against it."""
    rc, out, err = diff(a, b, "--json")
    doc = json.loads(out)
    assert rc == (1 if doc["different"] else 0), (rc, err)
    return doc


def ranked(doc):
    """(part, name, change) of each ranked difference."""
    return [(h["part"], h["name"], h["change"]) for h in doc["differences"]]


def text_lines(out):
    """The lines of a text report, each checked to fit 80 columns (the two file lines aside)."""
    lines = out.splitlines()
    assert max(len(l) for l in lines[2:]) <= 80, out
    return lines


@pytest.fixture
def record(shunt, lab_origin, tmp_path):
    """record(name, origin_args, client_args) -> capture path: a lab origin, a proxy recording
    to a new capture, the lab client through it; the proxy is stopped (capture complete)
    before the path is returned."""
    def run(name, origin_args, client_args):
        o = lab_origin("-q", *origin_args)
        path = tmp_path / name
        px = shunt("--capture", path)
        p = subprocess.run([peers.SHUNT_BIN, "lab", "client", "--json", "--proxy",
                            f"127.0.0.1:{px.port}"] + [str(a) for a in client_args] +
                           [f"http://127.0.0.1:{o.port}/"],
                           capture_output=True, text=True, timeout=peers.WAIT,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        problems = px.stop()
        assert problems == [], problems
        return path

    return run


@pytest.fixture
def story(record):
    """The story's two traces: (working, failing). The same WinINet client and Negotiate
    origin; the failing origin strips its Server header."""
    client = ["--policy", "wininet", "--requests", 10]
    working = record("working.db", ["--auth", "negotiate", "--server-header",
                                    "Microsoft-IIS/6.0"], client)
    failing = record("failing.db", ["--auth", "negotiate", "--no-server-header"], client)
    return working, failing


# ----------------------------------------------------------------------------- the story


@pytest.mark.parametrize("order", ["working-failing", "failing-working"])
def test_story_first_difference_is_the_server_header(story, order):
    working, failing = story
    a, b = (working, failing) if order == "working-failing" else (failing, working)
    fail = "b" if order == "working-failing" else "a"
    keep = "a" if fail == "b" else "b"

    doc = diff_json(a, b)
    first = doc["differences"][0]
    assert (first["rank"], first["part"], first["name"], first["change"]) == \
        (1, "response", "Server", "presence")
    assert first["goes_with_closes"] == "absence"
    assert (first[keep]["rate"], first[fail]["rate"]) == (1.0, 0.0)
    # nine closes were followed by a new connection (the tenth ended the run)
    assert first["closed"] == {"of": 9, "with": 9}
    assert first["score"] > max(h["score"] for h in doc["differences"][1:])
    c = doc["connections"]
    assert c["differ"] is True
    assert (c[fail]["connections"], c[fail]["exchanges"]) == (10, 20)
    assert (c[keep]["connections"], c[keep]["exchanges"]) == (1, 11)
    assert c[fail]["closed_by_client"] == {"fin": 10, "other": 0, "early": 9}
    assert c[keep]["closed_by_client"]["early"] == 0
    assert (c[fail]["handshakes"], c[keep]["handshakes"]) == (10, 1)
    # two origins, no port in common: aligned by path, and the one request lines up
    assert doc["aligned_by"] == "method, path and query" and doc["shared_requests"] == 1
    assert doc["only_in_a"] == [] and doc["only_in_b"] == []

    # the score rests on the 9 closes and the 11 comparable kept responses
    assert (first["rests_on"], first["explains"], first["ranked"]) == (20, 9, True)
    assert 0 < first["bound"] < first["score"]
    ev = dict(doc["evidence"])
    by = ev.pop("by_trace")
    assert ev == {"early_closes": 9, "kept_responses": 11, "needed": 3, "too_small": False}
    failing, working = (by["a"], by["b"]) if by["a"]["early_closes"] else (by["b"], by["a"])
    assert (failing, working) == ({"early_closes": 9, "kept_responses": 1},
                                  {"early_closes": 0, "kept_responses": 10})

    rc, out, err = diff(a, b)
    assert rc == 1, err
    lines = text_lines(out)
    first_diff = lines.index(next(l for l in lines if l.startswith(" 1. ")))
    assert lines[first_diff] == " 1. response header Server  (0.91 over 20 exchanges)"
    assert not any(l.startswith("too few exchanges") for l in lines)
    assert "missing on 9 of 9 responses before an early close" in lines[first_diff + 2]
    assert f"  => it differs: the client closed 9 connections early in {fail.upper()}, " \
           f"0 in {keep.upper()}." in lines
    row = next(l for l in lines if l.startswith("  requests per connection"))
    assert row.split()[-2:] == (["11.0", "2.0"] if keep == "a" else ["2.0", "11.0"])


def test_same_trace_twice_is_no_difference(story):
    working, _ = story
    doc = diff_json(working, working)
    assert doc["different"] is False and doc["differences"] == []
    assert doc["connections"]["differ"] is False
    assert doc["aligned_by"] == "method, origin, path and query"
    rc, out, _ = diff(working, working)
    assert rc == 0
    lines = text_lines(out)
    assert "  => connection behaviour is the same." in lines
    assert lines[-1] == "no difference."


def test_har_against_capture(story, tmp_path):
    working, failing = story
    har = tmp_path / "failing.har"
    p = subprocess.run([peers.SHUNT_BIN, "export", failing, "--har", har], capture_output=True,
                       text=True, timeout=peers.WAIT)
    assert p.returncode == 0, p.stderr
    doc = diff_json(working, har)
    assert (doc["files"]["a"]["from_har"], doc["files"]["b"]["from_har"]) == (False, True)
    assert ranked(doc)[0] == ("response", "Server", "presence")
    assert doc["connections"]["b"]["closed_by_client"]["early"] == 9
    rc, out, _ = diff(har, working)
    assert rc == 1
    assert out.splitlines()[0].endswith("failing.har (HAR)")


def test_old_iis_value_is_a_value_difference(record):
    # WinINet treats Microsoft-IIS/3.0 as if the server type were unknown: the same closes,
    # and now the field is on both sides with another value.
    client = ["--policy", "wininet", "--requests", 8]
    good = record("iis6.db", ["--auth", "ntlm", "--server-header", "Microsoft-IIS/6.0"], client)
    old = record("iis3.db", ["--auth", "ntlm", "--server-header", "Microsoft-IIS/3.0"], client)
    doc = diff_json(good, old)
    first = doc["differences"][0]
    assert (first["part"], first["name"], first["change"]) == ("response", "Server", "value")
    assert first["value"] == "Microsoft-IIS/3.0" and first["goes_with_closes"] == "value"
    assert (first["a"]["common"], first["b"]["common"]) == ("Microsoft-IIS/6.0",
                                                            "Microsoft-IIS/3.0")
    assert first["closed"] == {"of": 7, "with": 7}
    rc, out, _ = diff(good, old)
    lines = text_lines(out)
    i = lines.index(" 1. response header Server value  (%.2f over %d exchanges)" %
                    (first["score"], first["rests_on"]))
    assert first["rests_on"] == first["closed"]["of"] + first["kept"]["of"]
    assert lines[i + 1] == ('    "Microsoft-IIS/3.0" on 100% of B\'s responses; A has '
                            '"Microsoft-IIS/6.0"')


# ----------------------------------------------------------------------------- HAR by hand


def har_entry(t, url, resp_headers, conn, status=200, req_headers=()):
    """test_diagnose's entry, with Host first and the connection as an argument."""
    return diagnose_har_entry(t, url, [("Host", "intranet.example")] + list(req_headers),
                              status, resp_headers, conn=str(conn))


def trace(path, paths, server, backend, one_connection, status=200):
    """A HAR of GETs to <paths> on intranet.example: on one connection, or one connection
    each (the client closing after every response); Server <server> (None: none), X-Backend
    <backend>, and an X-Request-Id that changes on every response."""
    entries = []
    for i, p in enumerate(paths):
        h = [("Content-Length", "2"), ("X-Backend", backend), ("X-Request-Id", f"{path.stem}-{i}")]
        if server:
            h.insert(0, ("Server", server))
        st = status(p) if callable(status) else status
        entries.append(har_entry(i, "http://intranet.example" + p, h,
                                 1 if one_connection else i + 1, st))
    return write_har(path, entries)


ITEMS = ["/item/1", "/item/22", "/item/333", "/item/4444", "/item/55555", "/item/666666"]


def test_noise_header_never_ranks_above_the_real_difference(tmp_path):
    # B: no Server, and the client closes after every response; X-Backend differs too
    # (web-1 vs web-2) but it is only a value, and X-Request-Id changes on every response
    # on both sides: no difference at all.
    a = trace(tmp_path / "a.har", ITEMS, "Microsoft-IIS/6.0", "web-1", True)
    b = trace(tmp_path / "b.har", ["/item/7", "/item/8", "/item/9", "/item/10",
                                   "/item/11", "/item/12"], None, "web-2", False)
    for x, y in ((a, b), (b, a)):
        doc = diff_json(x, y)
        order = ranked(doc)
        assert order[0] == ("response", "Server", "presence")
        assert order.index(("response", "X-Backend", "value")) > 0
        assert all(name != "X-Request-Id" for _, name, _ in order)
        assert doc["connections"]["differ"] is True
        # /item/N folded: one kind of request on both sides
        assert doc["shared_requests"] == 1 and doc["only_in_a"] == doc["only_in_b"] == []
    fields = {f["name"]: f for f in diff_json(a, b)["fields"]}
    assert fields["X-Request-Id"]["values_compared"] is False
    assert fields["X-Request-Id"]["a"]["values"] is None
    assert fields["X-Backend"]["a"]["values"] == [{"value": "web-1", "count": 6}]


def closing_trace(path, conns, extra):
    """A HAR of GET /item/N, <conns> a list of connections, each a list of response header
    lists (beyond Content-Length): every connection but the last is followed by the next
    one, so its last response counts as an early close (the closer of a HAR is unknown)."""
    entries, t = [], 0
    for c, heads in enumerate(conns):
        for h in heads:
            entries.append(har_entry(t, f"http://intranet.example/item/{t}",
                                     [("Content-Length", "2")] + list(h) + list(extra), c + 1))
            t += 1
    return write_har(path, entries)


def test_a_difference_few_closes_go_with_never_ranks_above_one_they_all_do(tmp_path):
    """X-Thin is on 2 of the 3 responses before an early close and on none kept (0.67);
    X-Real is missing on all 3 and on 4 of the 11 kept (0.64). X-Thin's score rests on 2
    closes: it is listed, not ranked, and never above X-Real (it once ranked first)."""
    real, thin = ("X-Real", "1"), ("X-Thin", "1")
    a = closing_trace(tmp_path / "a.har", [[[real]] * 6], [])
    b = closing_trace(tmp_path / "b.har", [
        [[], [thin]], [[], [thin]], [[real], []], [[], []]], [])
    doc = diff_json(a, b)
    order = ranked(doc)
    h = {x["name"]: x for x in doc["differences"]}
    assert (h["X-Thin"]["score"], h["X-Real"]["score"]) == (pytest.approx(2 / 3),
                                                            pytest.approx(1 - 4 / 11))
    assert order.index(("response", "X-Real", "presence")) < \
        order.index(("response", "X-Thin", "presence"))
    assert (h["X-Real"]["rank"], h["X-Real"]["ranked"], h["X-Real"]["explains"]) == (1, True, 3)
    assert (h["X-Thin"]["rank"], h["X-Thin"]["ranked"], h["X-Thin"]["explains"]) == (
        None, False, 2)
    assert doc["evidence"]["too_small"] is False
    rc, out, _ = diff(a, b)
    lines = text_lines(out)
    assert " 1. response header X-Real  (0.64 over 14 exchanges)" in lines
    i = lines.index("other differences in headers, not ranked: each goes with fewer than 3 of "
                    "the")
    assert "  - response header X-Thin  (0.67 over 14 exchanges)" in lines[i:]


def test_traces_too_small_to_separate_anything_say_so(tmp_path):
    """One early close: every difference of that one response scores 1.00, on one exchange.
    Nothing is ranked, and the report says the traces are too small."""
    a = closing_trace(tmp_path / "a.har", [[[("Server", "IIS"), ("X-Cache", "HIT")]] * 2], [])
    b = closing_trace(tmp_path / "b.har", [[[("X-Cache", "MISS")]], [[("X-Cache", "HIT")]]], [])
    doc = diff_json(a, b)
    assert doc["evidence"] == {"early_closes": 1, "kept_responses": 3, "needed": 3,
                               "too_small": True,
                               "by_trace": {"a": {"early_closes": 0, "kept_responses": 2},
                                            "b": {"early_closes": 1, "kept_responses": 1}}}
    assert doc["differences"] and all(h["rank"] is None and not h["ranked"]
                                      for h in doc["differences"])
    h = {(x["name"], x["change"]): x for x in doc["differences"]}
    assert (h["X-Cache", "value"]["value"], h["X-Cache", "value"]["score"]) == ("MISS", 1.0)
    rc, out, _ = diff(a, b)
    lines = text_lines(out)
    assert rc == 1
    i = lines.index("too few exchanges to separate anything: 1 early close (A 0, B 1) and 3")
    assert lines[i + 1:i + 3] == ["comparable responses kept (A 2, B 1); a ranking needs at "
                                  "least 3 of each,", "both traces together."]
    assert "differences in headers, not ranked (too few exchanges):" in lines
    assert not any(l.startswith(" 1. ") for l in lines)
    assert any(l.startswith("  - response header ") and l.endswith("over 4 exchanges)")
               for l in lines)


def test_too_small_says_how_many_early_closes_each_trace_has(tmp_path):
    """One early close in each trace: the report says 2, and whose they are (it said "2 early
    closes" while the connections table above showed 1 and 1)."""
    a = closing_trace(tmp_path / "a.har", [[[("X-A", "1")]], [[("X-A", "1")]]], [])
    b = closing_trace(tmp_path / "b.har", [[[("X-B", "1")]], [[("X-B", "1")]]], [])
    doc = diff_json(a, b)
    assert doc["evidence"]["by_trace"] == {"a": {"early_closes": 1, "kept_responses": 1},
                                           "b": {"early_closes": 1, "kept_responses": 1}}
    assert (doc["evidence"]["early_closes"], doc["evidence"]["too_small"]) == (2, True)
    rc, out, _ = diff(a, b)
    lines = text_lines(out)
    assert "too few exchanges to separate anything: 2 early closes (A 1, B 1) and 2" in lines, out
    assert "comparable responses kept (A 1, B 1); a ranking needs at least 3 of each," in lines


def test_same_connection_behaviour_explains_nothing(tmp_path):
    a = trace(tmp_path / "a.har", ITEMS, "Microsoft-IIS/6.0", "web-1", True)
    b = trace(tmp_path / "b.har", ITEMS[::-1], "Microsoft-IIS/6.0", "web-2", True)
    doc = diff_json(a, b)
    assert doc["connections"]["differ"] is False
    assert ranked(doc) == [("response", "X-Backend", "value")]
    h = doc["differences"][0]
    assert h["score"] == 0 and h["goes_with_closes"] == "nothing" and h["closed"]["of"] == 0
    rc, out, _ = diff(a, b)
    assert rc == 1
    lines = text_lines(out)
    assert "  => connection behaviour is the same." in lines
    assert "    no early close on either side: it explains none" in lines


def test_statuses_and_requests_on_one_side_only(tmp_path):
    a = trace(tmp_path / "a.har", ITEMS + ["/only/a"], "nginx", "web", True)
    b = trace(tmp_path / "b.har", ITEMS + ["/only/b"], "nginx", "web", True,
              status=lambda p: 404 if p.endswith(("1", "2")) else 200)
    doc = diff_json(a, b)
    st = {s["status"]: s for s in doc["statuses"]}
    assert (st[404]["a"], st[404]["b"], st[404]["differs"]) == (0, 2, True)
    assert (st[200]["a"], st[200]["b"], st[200]["differs"]) == (7, 5, True)
    # the same origin on both sides: it is part of the key
    assert doc["aligned_by"] == "method, origin, path and query"
    assert doc["only_in_a"] == [{"request": "GET intranet.example:80/only/a", "exchanges": 1}]
    assert doc["only_in_b"] == [{"request": "GET intranet.example:80/only/b", "exchanges": 1}]
    assert doc["connections"]["differ"] is False
    rc, out, _ = diff(a, b)
    lines = text_lines(out)
    assert rc == 1
    row = next(l for l in lines if l.startswith("  404 "))
    assert row.split() == ["404", "0", "(0%)", "2", "(29%)"]
    assert "only in A (1 kind of request):" in lines and "only in B (1 kind of request):" in lines
    assert any(l.startswith("  GET intranet.example:80/only/b ") and l.endswith(" 1 exchange")
               for l in lines)


@pytest.mark.parametrize("a_url, b_url, aligned", [
    ("/item/1", "/item/2", True),
    ("/o/550e8400-e29b-41d4-a716-446655440000", "/o/6ba7b810-9dad-11d1-80b4-00c04fd430c8", True),
    ("/blob/deadbeef01", "/blob/0123abcd99", True),
    ("/page.php?id=12&lang=en", "/page.php?id=9876&lang=en", True),
    ("/search?q=cats", "/search?q=dogs", False),
    ("/items", "/users", False),
    ("/report/2024.pdf", "/report/2025.pdf", True),
])
def test_path_and_query_folding(tmp_path, a_url, b_url, aligned):
    a = write_har(tmp_path / "a.har", [har_entry(0, "http://intranet.example" + a_url,
                                                 [("Content-Length", "2")], 1)])
    b = write_har(tmp_path / "b.har", [har_entry(0, "http://intranet.example" + b_url,
                                                 [("Content-Length", "2")], 1)])
    doc = diff_json(a, b)
    assert doc["shared_requests"] == (1 if aligned else 0), (doc["only_in_a"], doc["only_in_b"])
    assert doc["different"] is (not aligned)


# ----------------------------------------------------------------------------- input


def test_bad_input_is_status_2_with_one_line(tmp_path):
    good = write_har(tmp_path / "good.har", [har_entry(0, "http://intranet.example/",
                                                       [("Content-Length", "2")], 1)])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all, not even close" * 10)
    bad_har = tmp_path / "bad.har"
    bad_har.write_text('{"log": {"entries": [')
    cases = [
        ([tmp_path / "missing.db", good], "missing.db: No such file or directory"),
        ([good, junk], "not a shunt capture"),
        ([bad_har, good], "bad.har: "),
        ([good], "two files to compare are needed"),
        ([good, good, good], "one file too many"),
        ([good, good, "--bogus"], "unknown option '--bogus'"),
    ]
    for args, msg in cases:
        rc, out, err = diff(*args)
        assert rc == 2, (args, rc, out, err)
        assert out == "" and msg in err and err.count("\n") == 1, (args, err)
        assert err.startswith("shunt diff: ")


def test_help_names_the_exit_statuses():
    rc, out, _ = diff("--help")
    assert rc == 0 and out.startswith("usage: shunt diff A B [--json]")
    assert "Exit status: 0 no difference, 1 differences, 2 bad input" in out
    p = subprocess.run([peers.SHUNT_BIN, "--help"], capture_output=True, text=True)
    assert "  diff " in p.stdout


# ----------------------------------------------------------------------------- hostile input


def test_control_characters_from_a_har_never_reach_the_terminal(tmp_path):
    # A hostile HAR: escape sequences in a field name, a field value and the URL. They are
    # shown as \xNN, as the capture views show wire bytes, never written raw.
    esc = "\x1b[31mRED\x1b]0;title\x07"
    a = write_har(tmp_path / "a.har", [
        har_entry(i, "http://intranet.example/x", [("Content-Length", "2"), ("Server", "IIS")], 1)
        for i in range(3)])
    b = write_har(tmp_path / "b.har", [
        har_entry(i, "http://intranet.example/x\x1b[2J",
                  [("Content-Length", "2"), ("Server", esc), ("X-\x1b[1mEvil", "1")], 1)
        for i in range(3)])
    rc, out, _ = diff(a, b)
    assert rc == 1
    lines = text_lines(out)
    assert "\x1b" not in out and "\x07" not in out, out
    assert " 1. response header X-\\x1b[1mEvil  (0.00)" in lines
    assert '    "\\x1b[31mRED\\x1b]0;title\\x07" on 100% of B\'s responses; A has "IIS"' in lines
    assert any(l.startswith("  GET intranet.example:80/x\\x1b[2J ") for l in lines), out
    # JSON escapes them itself
    doc = diff_json(a, b)
    assert any(h["value"] == esc for h in doc["differences"])


def test_long_and_non_ascii_fields_fit_80_columns(tmp_path):
    # A 200-character field name, values of 70 characters on both sides (one of them not
    # ASCII), request targets of 120 characters seen on one side only, several times each:
    # every line but the two naming the files fits 80 columns, cut with "..." and never in
    # the middle of a UTF-8 sequence (the output decodes as UTF-8).
    name = "X-" + "N" * 198
    a = write_har(tmp_path / "a.har", [
        har_entry(i, "http://intranet.example/" + "a" * 120,
                  [("Content-Length", "2"), ("Server", "Ünïcødé-" + "é" * 62)], 1)
        for i in range(3)])
    b = write_har(tmp_path / "b.har", [
        har_entry(i, "http://intranet.example/" + "b" * 120,
                  [("Content-Length", "2"), ("Server", "S" * 70), (name, "1")], 1)
        for i in range(3)])
    rc, out, _ = diff(a, b)
    assert rc == 1
    lines = text_lines(out)
    head = next(l for l in lines if l.startswith(" 1. response header X-NNN"))
    assert head.endswith("...  (0.00)"), head
    value = next(l for l in lines if l.startswith('    "SSS'))
    assert '..." on 100% of B\'s responses; A has "Ünïcødé-é' in value, value
    assert value.endswith('..."'), value
    only = [l for l in lines if l.startswith("  GET intranet.example:80/")]
    assert len(only) == 2 and all(l.endswith("...      3 exchanges") for l in only), only


def test_json_of_bytes_that_are_not_utf8(tmp_path):
    # A capture keeps wire bytes as they came: here a Server value in ISO-8859-1 with a
    # control byte, in a capture whose file name is not UTF-8 either. --json said "out of
    # memory" (jansson refuses such strings); now they are read as ISO-8859-1, as the HAR
    # export reads them.
    har = write_har(tmp_path / "a.har", [
        har_entry(i, "http://intranet.example/x", [("Content-Length", "2"), ("Server", "IIS")], 1)
        for i in range(3)])
    a = tmp_path / "a.db"
    b = tmp_path / os.fsdecode(b"caf\xe9.db")
    for path in (a, b):
        p = subprocess.run([peers.SHUNT_BIN, "import", har, "--capture", path],
                           capture_output=True, timeout=peers.WAIT)
        assert p.returncode == 0, p.stderr
    db = sqlite3.connect(b)
    with db:
        db.execute("UPDATE exchanges SET resp_head = replace(resp_head, CAST('Server: IIS' AS BLOB),"
                   " CAST(X'5365727665723a20436166e920ff1b' AS BLOB))")
    db.close()
    doc = diff_json(a, b)
    first = doc["differences"][0]
    assert (first["name"], first["change"], first["value"]) == ("Server", "value", "Café ÿ\x1b")
    assert first["a"]["common"] == "IIS" and first["b"]["common"] == "Café ÿ\x1b"
    fields = {f["name"]: f for f in doc["fields"]}
    assert fields["Server"]["b"]["values"] == [{"value": "Café ÿ\x1b", "count": 3}]
    assert doc["files"]["b"]["file"].endswith("/café.db")
    rc, out, _ = diff(a, b)
    assert rc == 1
    assert '    "Caf\\xe9 \\xff\\x1b" on 100% of B\'s responses; A has "IIS"' in text_lines(out)


def test_many_distinct_field_names_are_each_compared(tmp_path):
    # 1 500 responses a side, each with 4 field names of its own (12 000 names in all): every
    # name is found again by its hash and compared on both sides. (How fast is a benchmark's
    # business, not a test's: with a scan per name this took minutes under ASan.)
    def side(name, tag):
        return write_har(tmp_path / name, [
            har_entry(0, "http://intranet.example/", [("Content-Length", "2")] +
                      [(f"X-{tag}-{i}-{k}", "1") for k in range(4)], i // 100)
            for i in range(1500)])
    a, b = side("a.har", "a"), side("b.har", "b")
    doc = diff_json(a, b)
    assert len(doc["fields"]) == 12000 + 2  # the X- names, Content-Length; Host
    assert len(doc["differences"]) == 12000
