"""TLS for the daemon's HTTP front and its clients, and the rule that keeps tokens off
the network in clear: plain HTTP is served on loopback addresses only, unless the
operator says otherwise (``[http] allow_plain_http = true``, e.g. behind a TLS proxy).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl

from ..errors import ConfigError

__all__ = ["server_context", "client_context", "is_loopback", "check_plain_http"]


def server_context(certificate: str, key: str | None = None) -> ssl.SSLContext:
    """A server context for the PEM ``certificate`` chain and its ``key`` (None: the key
    is in the certificate file). TLS 1.2 or later. Raises :class:`ConfigError` naming
    the file that cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for what, path in (("certificate", certificate), ("key", key)):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"[http] {what} {path!r} is not a readable file")
    try:
        context.load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"[http] certificate {certificate!r} and key {key!r} cannot be used: {exc}"
        ) from None
    return context


def client_context(ca: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and host name: against
    the PEM file or directory ``ca`` (a private CA, or the server's self-signed
    certificate), else against the system's trusted CAs."""
    if ca is None:
        return ssl.create_default_context()
    if os.path.isdir(ca):
        return ssl.create_default_context(capath=ca)
    if not os.path.isfile(ca):
        raise ConfigError(f"ca {ca!r} is not a PEM file or a directory of them")
    return ssl.create_default_context(cafile=ca)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address ("" and "0.0.0.0"
    mean every interface: not loopback)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_plain_http(host: str, tls: bool, allow_plain_http: bool) -> None:
    """Raise :class:`ConfigError` when plain HTTP would be served beyond loopback
    without the operator's explicit ``allow_plain_http``."""
    if tls or allow_plain_http or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve plain HTTP on {host or 'every interface'!r}: tokens would cross "
        "the network in clear. Set [http] certificate and key (TLS), or allow_plain_http = "
        "true (--allow-plain-http) when a TLS proxy in front does that job"
    )
