"""labpeers.py - the lab's peers for integration tests: `shunt lab origin` as a process
(LabOrigin), and builders of the lab's NTLM and Negotiate tokens that mirror src/lab/auth.c
byte for byte (docs/lab.md gives the algorithm), so that tests can do the handshakes over
raw sockets. Loopback only; every wait is bounded by peers.WAIT seconds.

    from labpeers import LabOrigin, ntlm_negotiate, ntlm_authenticate, spnego_init
    o = LabOrigin(["--auth", "ntlm"])          # waits for its listening line
    c = o.client()                             # a peers.Client connected to it
    ...
    assert o.stop() == []                      # SIGTERM by pid, exit 0, no sanitizer report
"""
import base64
import re
import struct
import time

from peers import WAIT, Process

ORIGIN_LISTEN_RE = re.compile(r"^shunt lab origin: listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)$")
# One log line about a connection: "origin: conn ID port PORT: TEXT".
CONN_LINE_RE = re.compile(r"^origin: conn (\d+) port (\d+): (.*)$")


class LabOrigin(Process):
    """A running `$SHUNT_BIN lab origin --listen LISTEN ARGS...`.

    .port, .host    where it listens (from its stdout line)
    .pid            its process id
    .log            stderr lines so far (list of str)
    .conn_log(port) the log texts about the connection whose client port is <port>
    .wait_conn_log(port, text) waits for the log text <text> about that connection
    .wait_log(pattern, count=1, timeout=WAIT) waits for <count> stderr lines matching the
                    regex <pattern>; returns the match objects
    .client()       a peers.Client connected to it
    .url(path)      http://127.0.0.1:PORT/path
    .stop()         SIGTERM by pid (unless already signalled), wait; returns a list of
                    problems (empty when it exited 0 with no sanitizer report)
    Also a context manager (stop() at exit, raising AssertionError on problems).
    """

    name = "lab origin"
    listen_re = ORIGIN_LISTEN_RE

    def __init__(self, args=(), listen="127.0.0.1:0", wait_listening=True, env=None):
        super().__init__(["lab", "origin"] + (["--listen", listen] if listen else []) + list(args),
                         wait_listening, env)

    @property
    def log(self):
        return self.stderr.splitlines()

    def conn_log(self, port):
        """Texts of the log lines about the connection from client port <port>."""
        out = []
        for line in self.log:
            m = CONN_LINE_RE.match(line)
            if m and int(m.group(2)) == port:
                out.append(m.group(3))
        return out

    def wait_conn_log(self, port, text, timeout=WAIT):
        """Waits until the connection from client port <port> has the log text <text>
        (exactly); returns all its texts so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                texts = self.conn_log(port)
                if text in texts:
                    return texts
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line {text!r} for port {port} after {timeout}s:\n"
                                         f"{self.stderr}")
                self._cond.wait(left)

    def wait_log(self, pattern, count=1, timeout=WAIT):
        return self.wait_stderr(pattern, count, timeout)

    def url(self, path="/"):
        h = f"[{self.host}]" if ":" in (self.host or "") else self.host
        return f"http://{h}:{self.port}{path}"


# ----------------------------------------------------------------------------- NTLM (lab)

NTLM_SIG = b"NTLMSSP\0"
NTLM_FLAGS_NEGOTIATE = 0x00088207
NTLM_FLAGS_AUTHENTICATE = 0x00088205
LAB_WORKSTATION = "LABCLIENT"
FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3


def _fnv1a(h, data):
    for b in data:
        h ^= b
        h = (h * FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def ntlm_lab_response(challenge, domain_wire, user_wire):
    """The lab NT response: 24 bytes, three FNV-1a 64 hashes (little-endian) of
    i || challenge || domain || 0x00 || user, for i = 0, 1, 2. NOT cryptography."""
    out = b""
    for i in range(3):
        h = _fnv1a(FNV64_OFFSET, bytes([i]) + challenge + domain_wire + b"\0" + user_wire)
        out += struct.pack("<Q", h)
    return out


def ntlm_negotiate():
    """A NEGOTIATE (type 1) message, base64."""
    m = NTLM_SIG + struct.pack("<II", 1, NTLM_FLAGS_NEGOTIATE)
    m += struct.pack("<HHI", 0, 0, 32) * 2
    return base64.b64encode(m).decode()


def ntlm_parse_challenge(b64):
    """The 8-byte server challenge of a CHALLENGE (type 2) message; ValueError if it is not one."""
    raw = base64.b64decode(b64, validate=True)
    if len(raw) < 32 or raw[:8] != NTLM_SIG or struct.unpack_from("<I", raw, 8)[0] != 2:
        raise ValueError(f"not an NTLM CHALLENGE: {raw[:16]!r}")
    return raw[24:32]


def ntlm_authenticate(challenge_b64_or_bytes, user):
    """The AUTHENTICATE (type 3) for <user> ("DOMAIN\\\\user" or "user") answering a CHALLENGE
    (given as its base64, or as the raw 8-byte challenge), base64."""
    ch = challenge_b64_or_bytes
    if isinstance(ch, str):
        ch = ntlm_parse_challenge(ch)
    dom, _, name = user.rpartition("\\")
    d, u, w = dom.encode("utf-16-le"), name.encode("utf-16-le"), LAB_WORKSTATION.encode("utf-16-le")
    lm = b"\0" * 24
    nt = ntlm_lab_response(ch, d, u)
    off = 64
    dom_at, user_at = off, off + len(d)
    ws_at = user_at + len(u)
    lm_at = ws_at + len(w)
    nt_at = lm_at + 24
    end = nt_at + 24
    m = NTLM_SIG + struct.pack("<I", 3)
    for o, n in ((lm_at, 24), (nt_at, 24), (dom_at, len(d)), (user_at, len(u)), (ws_at, len(w)), (end, 0)):
        m += struct.pack("<HHI", n, n, o)
    m += struct.pack("<I", NTLM_FLAGS_AUTHENTICATE)
    m += d + u + w + lm + nt
    return base64.b64encode(m).decode()


# ----------------------------------------------------------------------------- SPNEGO (lab)

OID_SPNEGO = bytes([0x2B, 0x06, 0x01, 0x05, 0x05, 0x02])
OID_KRB5 = bytes([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x12, 0x01, 0x02, 0x02])
OID_NTLM = bytes([0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A])


def der_len(n):
    """A DER length: short form under 128, else the minimal long form."""
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def _int(v):
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return tlv(0x02, b)


def _ctx_int(ctx, v):
    return tlv(0xA0 | ctx, _int(v))


def _enc_data(cipher):
    return tlv(0x30, _ctx_int(0, 18) + _ctx_int(1, 1) + tlv(0xA2, tlv(0x04, cipher)))


def spnego_init(user, host):
    """A NegTokenInit (in an InitialContextToken) with a lab Kerberos AP-REQ from <user> to
    HTTP/<host>, base64, as shunt_lab_spnego_init() writes it."""
    sname = tlv(0x30, _ctx_int(0, 2) + tlv(0xA1, tlv(0x30, tlv(0x1B, b"HTTP") + tlv(0x1B, host.encode()))))
    ticket = tlv(0x61, tlv(0x30, _ctx_int(0, 5) + tlv(0xA1, tlv(0x1B, b"LAB")) + tlv(0xA2, sname)
                           + tlv(0xA3, _enc_data(b"lab-ticket:HTTP/" + host.encode()))))
    ap_req = tlv(0x6E, tlv(0x30, _ctx_int(0, 5) + _ctx_int(1, 14)
                           + tlv(0xA2, tlv(0x03, b"\x00\x20\x00\x00\x00")) + tlv(0xA3, ticket)
                           + tlv(0xA4, _enc_data(b"lab-authenticator:" + user.encode()))))
    gss = tlv(0x60, tlv(0x06, OID_KRB5) + b"\x01\x00" + ap_req)
    init = tlv(0x30, tlv(0xA0, tlv(0x30, tlv(0x06, OID_KRB5) + tlv(0x06, OID_NTLM)))
               + tlv(0xA2, tlv(0x04, gss)))
    ict = tlv(0x60, tlv(0x06, OID_SPNEGO) + tlv(0xA0, init))
    return base64.b64encode(ict).decode()


def spnego_is_final(b64):
    """True when <b64> is an accept-completed NegTokenResp naming Kerberos, with an AP-REP."""
    raw = base64.b64decode(b64, validate=True)
    return (raw[:1] == b"\xa1" and b"\xa0\x03\x0a\x01\x00" in raw
            and tlv(0x06, OID_KRB5) in raw and b"\x02\x00\x6f" in raw)


def auth_param(msg, scheme):
    """The token of the first `WWW-Authenticate: <scheme> TOKEN` of response <msg>, '' when
    the scheme comes bare, None when absent."""
    for v in msg.all("WWW-Authenticate"):
        s, _, tok = v.decode().partition(" ")
        if s.lower() == scheme.lower():
            return tok.strip()
    return None
