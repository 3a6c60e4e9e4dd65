"""TLS for the default engine: the context it connects with, and TLS failures in words."""

from __future__ import annotations

import os
import ssl

import httpx

__all__ = ["tls_context", "tls_problem"]


def tls_context(https: bool, verify: bool | str | ssl.SSLContext, cert: str | None,
                key: str | None) -> ssl.SSLContext:
    """The context to connect with: ``verify`` (True, False, a CA bundle path or a
    context) presenting the client certificate ``cert`` (its key in it or in ``key``);
    for plain http one that loads no CA bundle (never used, and slow to load)."""
    if key is not None and cert is None:
        raise ValueError("key= names the private key of a client certificate: give cert= too")
    if isinstance(verify, str):
        verify = _ca_context(verify)
    if cert is not None:
        return _with_client_cert(verify, cert, key)
    if isinstance(verify, ssl.SSLContext):
        return verify
    return httpx.create_ssl_context(verify=verify if https else False)


def _ca_context(path: str) -> ssl.SSLContext:
    """A TLS context trusting the CA bundle at ``path`` (a file, or a directory of hashed
    certificates). A file that cannot be read raises its OSError, naming the path; one
    that holds no certificate a ValueError."""
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot use the CA bundle {path}: {exc.reason or exc}") from None
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the CA bundle: {exc.strerror}",
                        path) from None


def _with_client_cert(verify: bool | ssl.SSLContext, cert: str,
                      key: str | None) -> ssl.SSLContext:
    """``verify`` as a TLS context that presents the client certificate ``cert`` (a PEM
    file; its private key in it or in ``key``); ValueError naming the files when they
    cannot be loaded. An ``ssl.SSLContext`` given is changed in place."""
    context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(
        verify=verify)
    files = cert if key is None else f"{cert} and {key}"
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot load the client certificate from {files}: "
                         f"{exc.reason or exc} (a PEM certificate and its unencrypted "
                         "private key)") from None
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the client certificate: {exc.strerror}",
                        files) from None
    return context


def tls_problem(exc: BaseException) -> str | None:
    """What went wrong in TLS, in words, if ``exc`` comes from a TLS failure (a
    certificate refused either way): such a failure is not repeated."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ("the server's TLS certificate was not accepted "
                    f"({getattr(cause, 'verify_message', None) or cause}): give the CA "
                    "bundle that signed it (verify=, couchsync --cacert), or check the host "
                    "name")
        if isinstance(cause, ssl.SSLError) and not isinstance(
                cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            reason = str(getattr(cause, "reason", None) or cause).lower().replace("_", " ")
            if "certificate" in reason or "unknown ca" in reason or "handshake" in reason:
                return (f"the server refused the TLS connection ({reason}): it may want a "
                        "client certificate it trusts (cert=, couchsync --cert/--key)")
            return f"TLS error ({reason})"
        cause = cause.__cause__ or cause.__context__
    return None
