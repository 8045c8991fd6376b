"""test_hostile_captures.py - a capture file is untrusted input. Each case below crafts one
with python's sqlite3 (the views' sample capture, then SQL that breaks it: integers at their
extremes, text where numbers belong, NULLs, dangling and duplicate ids, huge or empty blobs,
missing tables, a wrong user_version) and runs every command that reads a capture on it:
sessions, connections, show (text and --json), export --har, diagnose (text and --json) and
diff. Each must end cleanly: exit 0, 1 (diagnose: findings) or 2 (a refused file, with a
one-line reason), never a crash or a sanitizer report (run it with SHUNT_BIN=build-asan/shunt)."""
import json
import os
import sqlite3
import subprocess

import pytest

import captures
import peers

ENV = dict(os.environ, TZ="UTC", COLUMNS="120")
ENV.pop("PAGER", None)

BIG = 1 << 62
I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)
TABLES = ["capture", "connections", "upstreams", "exchanges", "bodies", "changes", "tls"]

# (name, SQL run on the sample capture, loose, refused): <loose> first copies the sample into
# tables without types or constraints (so ids may repeat, be NULL or text); <refused> is the
# text that the one-line error of every command must hold, or None when every command must
# read the file (exit 0, or 1 for diagnose with findings).
CASES = [
    ("times-at-int64-extremes",
     f"UPDATE exchanges SET started_us = {I64_MIN}, duration_us = {I64_MAX},"
     f" t_blocked = {I64_MAX}, t_dns = {I64_MAX}, t_connect = {I64_MAX}, t_send = {I64_MAX},"
     f" t_wait = {I64_MAX}, t_receive = {I64_MAX};"
     f" UPDATE connections SET opened_us = {I64_MAX}, closed_us = {I64_MIN}", False, None),
    ("times-near-int64-max",
     f"UPDATE exchanges SET started_us = {I64_MAX} - id, duration_us = {I64_MAX} - 1;"
     f" UPDATE connections SET opened_us = {I64_MIN}, closed_us = {I64_MAX}", False, None),
    # review 6: a pending exchange's wait was end - started_us, unclamped
    ("pending-started-at-int64-min",
     f"UPDATE exchanges SET flags = 16, status = NULL, started_us = {I64_MIN};"
     f" UPDATE capture SET stopped_us = started_us + 1000000", False, None),
    ("pending-stopped-at-int64-max",
     f"UPDATE exchanges SET flags = 16, status = NULL, started_us = -id;"
     f" UPDATE capture SET stopped_us = {I64_MAX}", False, None),
    ("pending-stopped-at-int64-min",
     f"UPDATE exchanges SET flags = 16, status = NULL, started_us = {I64_MIN} + id;"
     f" UPDATE capture SET stopped_us = {I64_MIN}", False, None),
    # review 7: a head the parser refused, yet an upstream and a head as sent (nulls.db)
    ("refused-head-with-an-upstream",
     "UPDATE exchanges SET method = '', error = 'bad request: ', flags = 66,"
     " req_head_sent = req_head, upstream_id = (SELECT min(id) FROM upstreams)", False, None),
    ("sizes-and-counts-extreme",
     f"UPDATE exchanges SET req_body_size = {I64_MIN}, resp_body_size = {I64_MAX},"
     f" req_bytes = {I64_MAX}, resp_bytes = {I64_MIN}, flags = -1, status = {I64_MAX};"
     f" UPDATE upstreams SET bytes_in = {I64_MAX}, bytes_out = {I64_MIN};"
     f" UPDATE capture SET events_dropped = {I64_MAX}, body_limit = {I64_MIN}", False, None),
    ("surplus-bytes-overflow",
     f"UPDATE exchanges SET resp_body_size = {BIG}, error = NULL, flags = 0;"
     f" UPDATE upstreams SET bytes_in = {I64_MAX}", False, None),
    ("ids-negative-and-extreme",
     f"UPDATE exchanges SET id = -id - 1000, idx = {I64_MIN} + id;"
     f" INSERT INTO exchanges (id, conn_id, idx, started_us, method, url) VALUES"
     f" ({I64_MAX}, {I64_MAX}, {I64_MAX}, 0, 'GET', 'http://x/'),"
     f" ({I64_MIN}, {I64_MIN}, 1, 0, 'GET', 'http://x/')", False, None),
    ("dense-ids-far-apart",
     f"UPDATE exchanges SET id = {I64_MIN} + id WHERE id < 3;"
     f" UPDATE exchanges SET id = {I64_MAX} - id WHERE id > 4", False, None),
    ("no-connections", "DELETE FROM connections; DELETE FROM upstreams", False, None),
    ("dangling-foreign-keys",
     "UPDATE exchanges SET conn_id = conn_id + 100, upstream_id = 999;"
     " UPDATE upstreams SET conn_id = 77; UPDATE bodies SET exchange_id = exchange_id + 555", False, None),
    ("no-capture-row", "DELETE FROM capture", False, None),
    ("only-a-capture-row",
     "DELETE FROM exchanges; DELETE FROM connections; DELETE FROM upstreams;"
     " DELETE FROM bodies; DELETE FROM changes", False, None),
    ("text-where-numbers-belong",
     "UPDATE exchanges SET started_us = 'soon', duration_us = 'long', status = 'OK',"
     " t_wait = x'00ff', idx = 'first', upstream_id = 'up';"
     " UPDATE connections SET client_port = 'http', opened_us = 'then', closer = 17,"
     " close_how = x'ff00'", False, None),
    ("reals-where-integers-belong",
     "UPDATE exchanges SET started_us = 1e300, duration_us = -1e300, status = 200.5,"
     " resp_body_size = 9.3e18, t_send = 1e19; UPDATE connections SET opened_us = -1e19",
     False, None),
    ("heads-huge-empty-and-not-text",
     "UPDATE exchanges SET req_head = zeroblob(0), resp_head = randomblob(300000) WHERE id = 1;"
     " UPDATE exchanges SET req_head = CAST(printf('%.*c', 200000, 'A') AS BLOB),"
     " resp_head_sent = x'0d0a0d0a' WHERE id = 2;"
     " UPDATE exchanges SET req_head = 'GET / HTTP/1.1' || char(10) || 'Authorization: NTLM ',"
     " resp_head = 12345 WHERE id = 3", False, None),
    ("heads-and-start-lines-missing",
     "UPDATE exchanges SET req_head = NULL, req_head_sent = NULL, method = NULL,"
     " http_version = NULL, url = NULL WHERE id = 1;"
     " UPDATE exchanges SET resp_head = CAST('HTTP/1.1 2004' AS BLOB), resp_head_sent = NULL,"
     " status = NULL WHERE id = 2", False, None),
    ("field-names-with-nul",
     "UPDATE exchanges SET resp_head = CAST('HTTP/1.1 200 OK' || char(13, 10) || 'X' ||"
     " char(0) || 'Y: 1' || char(0) || '2' || char(13, 10, 13, 10) AS BLOB),"
     " resp_head_sent = NULL", False, None),
    ("text-not-utf8",
     "UPDATE exchanges SET url = CAST(x'687474703a2f2fff2f3f613dfe' AS TEXT),"
     " method = CAST(x'c0af' AS TEXT), host = CAST(x'ed' AS TEXT),"
     " error = CAST(x'00ff' AS TEXT);"
     " UPDATE upstreams SET addr = CAST(x'3132372e302e302e31ff' AS TEXT);"
     " UPDATE changes SET what = CAST(x'ff' AS TEXT), by = CAST(x'c3' AS TEXT)", False, None),
    ("bodies-odd",
     "DELETE FROM bodies; INSERT INTO bodies VALUES (1, 7, 1, x'00'), (1, -1, 0, x''),"
     " (2, 1, 99, zeroblob(3000000)), (3, 0, -5, 'text, not a blob')", False, None),
    ("loose-duplicate-ids",
     "INSERT INTO exchanges SELECT * FROM exchanges; INSERT INTO connections SELECT * FROM"
     " connections; INSERT INTO capture SELECT * FROM capture; INSERT INTO bodies SELECT *"
     " FROM bodies; INSERT INTO upstreams SELECT * FROM upstreams", True, None),
    ("loose-nulls-everywhere",
     "UPDATE exchanges SET id = NULL, conn_id = NULL, idx = NULL, started_us = NULL,"
     " req_body_size = NULL, resp_body_size = NULL, duration_us = NULL, flags = NULL;"
     " UPDATE connections SET id = NULL, tls = NULL, tunnel = NULL;"
     " UPDATE bodies SET data = NULL, direction = NULL, truncated = NULL;"
     " UPDATE capture SET id = NULL, shunt_version = NULL, source = NULL", True, None),
    ("loose-text-ids",
     "UPDATE exchanges SET id = 'e' || id, conn_id = 'c' || conn_id;"
     " UPDATE connections SET id = 'c' || id WHERE id > 1", True, None),
    ("user-version-newer", "PRAGMA user_version = 3", False, "made by a newer shunt"),
    ("user-version-zero", "PRAGMA user_version = 0", False, "capture schema 0"),
    ("user-version-negative", "PRAGMA user_version = -7", False, "capture schema -7"),
    ("application-id-other", "PRAGMA application_id = 7", False, "not a shunt capture"),
] + [(f"table-{t}-missing", f"DROP TABLE {t}", False, f"no table {t}") for t in TABLES] + [
    ("exchanges-is-a-view",
     "ALTER TABLE exchanges RENAME TO x; CREATE VIEW exchanges AS SELECT * FROM x", False,
     "no table exchanges"),
]


def build(path, sql, loose):
    """The sample capture at <path>, then <sql> on it (after a copy into loose tables)."""
    if loose:
        base = str(path) + ".base"
        captures.sample(base)
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute(f"ATTACH ? AS b", (base,))
        for t in TABLES:
            cols = [r[1] for r in db.execute(f"PRAGMA b.table_info({t})")]
            db.execute(f"CREATE TABLE main.{t} ({', '.join(cols)})")
            db.execute(f"INSERT INTO main.{t} SELECT * FROM b.{t}")
        db.execute("DETACH b")
        db.execute("PRAGMA application_id = 1936223860")
        db.execute("PRAGMA user_version = 2")
        os.unlink(base)
    else:
        captures.sample(path)
        db = sqlite3.connect(str(path), isolation_level=None)
    db.executescript(sql)
    db.close()


def run(*args):
    p = subprocess.run([peers.SHUNT_BIN, *[str(a) for a in args]], capture_output=True, env=ENV,
                       timeout=peers.WAIT * 6)
    err = p.stderr.decode(errors="replace")
    assert not peers.SANITIZER_RE.search(err), err
    assert p.returncode >= 0, f"killed by signal {-p.returncode}: {err}"
    return p.returncode, p.stdout, err


@pytest.mark.parametrize("name,sql,loose,refused", CASES, ids=[c[0] for c in CASES])
def test_hostile_capture(tmp_path, name, sql, loose, refused):
    cap = tmp_path / "hostile.db"
    build(cap, sql, loose)
    har = tmp_path / "out.har"
    commands = [
        ("sessions", cap), ("sessions", cap, "--json"), ("connections", cap),
        ("connections", cap, "--json"), ("show", cap, "1"), ("show", cap, "1", "--json"),
        ("export", cap, "--har", har), ("diagnose", cap), ("diagnose", cap, "--json"),
        ("diff", cap, cap),
    ]
    for args in commands:
        rc, out, err = run(*args)
        what = f"shunt {' '.join(map(str, args))}: exit {rc}, stderr {err!r}"
        if refused is not None:
            assert rc == 2, what
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"shunt {args[0]}: "), what
            assert refused in lines[0], what
            continue
        if args[0] == "show" and rc == 2:
            # the sample's exchange 1 may be gone (NULL, text or moved ids): said in one line
            assert err.count("\n") == 1 and "no exchange 1" in err, what
            continue
        assert rc in ((0, 1) if args[0] == "diagnose" else (0,)), what
        if "--json" in args:
            json.loads(out)
        if args[0] == "export":
            doc = json.loads(har.read_bytes())
            assert doc["log"]["version"] == "1.2"
            for e in doc["log"]["entries"]:
                assert e["startedDateTime"][:4].isdigit(), e["startedDateTime"]
