"""test_https_engine.py - what the TLS engine verifies upstream when intercepting: the name
the client was promised (its SNI, for which shunt showed it a leaf), not the CONNECT host.
Peers as in test_https.py (tlspeers.py): nginx with the test CA's leaves, a Python TLS
client through shunt."""
import pytest

import tlspeers
from tlspeers import TLSClient, fields, request

pki = tlspeers.pki
tls_nginx = tlspeers.tls_nginx
shunt_ca = tlspeers.shunt_ca

pytestmark = pytest.mark.deadline(40)


def intercepting(shunt, shunt_ca, pki, tmp_path):
    px = shunt("--intercept", "--upstream-cacert", pki.ca, "--capture", tmp_path / "c.db",
               env=shunt_ca.env)
    shunt_ca.wait()
    return px


def test_the_upstream_is_verified_for_the_clients_sni_not_the_connect_host(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """CONNECT to the origin's address with an SNI its certificate does not name: shunt
    showed the client a leaf for that SNI, so it must not pass the origin as verified (it
    did, checking the address). And the other way: an SNI the certificate names, with the
    CONNECT to an address it does not, passes."""
    px = intercepting(shunt, shunt_ca, pki, tmp_path)
    good = tls_nginx.port["good"]  # localhost, a.shunt.test, b.shunt.test, IP 127.0.0.1
    c = TLSClient(px.port, "127.0.0.1", good, shunt_ca.cert, sni="c.shunt.test")
    r = c.exchange(request("c.shunt.test"))
    assert r is not None and r.status == 502, r
    assert b"hostname mismatch" in r.body and b"not c.shunt.test" in r.body, r.body
    c.close()

    wrong = tls_nginx.port["wrong"]  # wrong.shunt.test only
    c = TLSClient(px.port, "127.0.0.1", wrong, shunt_ca.cert, sni="wrong.shunt.test")
    r = c.exchange(request("wrong.shunt.test"))
    assert r is not None and r.status == 200, r
    assert fields(r.body)[0]["sni"] == "wrong.shunt.test"
    c.close()
    assert px.stop() == []
