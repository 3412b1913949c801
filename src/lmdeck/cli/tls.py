"""The certificate check ``lmdeck serve`` runs before it listens with TLS.

problem = tls_problem(Path("cert.pem"), Path("key.pem"))   # None, or one sentence naming the fix
"""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_problem(cert: Path, key: Path) -> str | None:
    """Why ``cert`` and ``key`` (PEM files) cannot serve HTTPS, or None when they can.

    Reads both files and loads them as a pair, so that an unreadable file, a file that is not PEM,
    or a key that does not belong to the certificate is named before the port is bound.
    """
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            return f"{name} {path} cannot be read ({exc.strerror or exc}): give a readable PEM file"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return (
            f"tls_cert {cert} and tls_key {key} are not a usable certificate and key ({exc}): "
            "give a PEM certificate (chain) and the unencrypted PEM private key that belongs to it"
        )
    return None
