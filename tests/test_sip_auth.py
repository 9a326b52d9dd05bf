"""fastfax.sip.auth against the worked examples of RFC 2617 (3.5) and RFC 7616 (3.9.1)."""

from __future__ import annotations

from fastfax.sip import auth
from fastfax.sip.message import SipError

RFC7616 = dict(realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
               opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA = auth.Credentials("Mufasa", "Circle of Life")


def _response_of(value: str) -> str:
    return auth.parse_credentials(value)["response"]


def test_rfc7616_md5_and_sha256() -> None:
    header = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
              'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
              'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    expected = {"MD5": "8ca523f5e9506fed4657c9700eebdbec",
                "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"}
    for alg, want in expected.items():
        ch = auth.parse_challenge(header.format(alg=alg))
        assert (ch.realm, ch.nonce, ch.opaque, ch.qop) == (
            RFC7616["realm"], RFC7616["nonce"], RFC7616["opaque"], ("auth", "auth-int"))
        value = auth.authorization(ch, MUFASA, "GET", "/dir/index.html", cnonce=CNONCE, nc=1)
        got = auth.parse_credentials(value)
        assert got["response"] == want
        assert (got["nc"], got["qop"], got["cnonce"], got["opaque"]) == (
            "00000001", "auth", CNONCE, RFC7616["opaque"])


def test_rfc2617_md5() -> None:
    ch = auth.parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                              'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                              'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = auth.authorization(ch, auth.Credentials("Mufasa", "Circle Of Life"), "GET",
                               "/dir/index.html", cnonce="0a4f113b", nc=1)
    assert _response_of(value) == "6629fae49393a05397450978507c4ef1"


def test_choose_strongest_and_verify_round_trip() -> None:
    values = ['Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
              'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"',
              'Digest realm="r", nonce="n3", algorithm=SHA-512-256, qop="auth"',
              'Basic realm="r"', 'Digest realm="r", nonce="n4", algorithm=UNKNOWN']
    assert auth.choose(values).algorithm == "SHA-512-256"
    assert auth.choose(values[:2]).algorithm == "SHA-256"
    assert auth.choose(values[3:]) is None
    creds = auth.Credentials("gw", "s3cret!")
    for alg in ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256"):
        for qop in (True, False):
            ch = auth.parse_challenge(auth.challenge("trunk", "abc", algorithm=alg, qop=qop))
            value = auth.authorization(ch, creds, "REGISTER", "sip:trunk", cnonce="xyz", nc=3)
            lookup = {"gw": "s3cret!"}.get
            assert auth.verify(value, "REGISTER", lookup, realm="trunk", nonce="abc") == "gw"
            assert auth.verify(value, "INVITE", lookup, realm="trunk", nonce="abc") is None
            assert auth.verify(value, "REGISTER", {"gw": "wrong"}.get, realm="trunk",
                               nonce="abc") is None
            assert auth.verify(value, "REGISTER", lookup, realm="trunk", nonce="other") is None


def test_password_never_shown_and_bad_challenges() -> None:
    creds = auth.Credentials("gw", "hunter2")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)
    for bad in ("Digest", 'Digest realm="r"', 'Digest realm="r", nonce="n", nonce="m"',
                'Digest realm="r, nonce=n', "Digest ,,,", "NTLM abc"):
        try:
            auth.parse_challenge(bad)
        except SipError:
            continue
        raise AssertionError(f"accepted {bad!r}")
