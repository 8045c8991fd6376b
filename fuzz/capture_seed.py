#!/usr/bin/python3
"""fuzz/capture_seed.py - turns a capture file into a seed of fuzz/fuzz_capture.c: the rows
of each table as the driver's compact row description (header byte 0: the real schema).

    fuzz/capture_seed.py IN.db OUT [--max-rows N]

Integers that fit a signed byte are int8 values, others int64; text up to 255 bytes is text,
longer text and every BLOB are blobs (up to 65535 bytes, cut beyond).
"""
import argparse
import sqlite3
import struct

TABLES = ["capture", "connections", "upstreams", "exchanges", "bodies", "changes"]


def value(v):
    if v is None:
        return b"\x00"
    if isinstance(v, int):
        if -128 <= v <= 127:
            return b"\x01" + struct.pack("<b", v)
        return b"\x02" + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x06" + struct.pack("<d", v)
    if isinstance(v, str):
        v = v.encode()
        if len(v) <= 255:
            return b"\x04" + bytes([len(v)]) + v
    v = bytes(v)[:65535]
    return b"\x05" + struct.pack("<H", len(v)) + v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("out")
    ap.add_argument("--max-rows", type=int, default=40)
    a = ap.parse_args()
    db = sqlite3.connect(a.db)
    out = bytearray(b"\x00")
    for t, name in enumerate(TABLES):
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({name})")]
        for row in db.execute(f"SELECT {', '.join(cols)} FROM {name} LIMIT ?", (a.max_rows,)):
            out += bytes([t]) + b"".join(value(v) for v in row)
    with open(a.out, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
