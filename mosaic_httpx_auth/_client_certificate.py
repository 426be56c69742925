"""A client certificate read from files, for ``tls_client_auth``: the SSL context that presents
it, and what of its private key a shared cache may derive its secret from.

An SSL context keeps its key inside OpenSSL, out of Python's reach, so a shared cache cannot
derive a client's secret from a context the application built: it needs an `encryption_key`.
A context loaded here is different: its key passed through this process, and a SHA-256 digest
of the key (never the key) stays beside the context, for as long as the context lives.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    import ssl
    from types import ModuleType

# The settings that `ConfigurationError`s from here name: each file, or the pair.
CERTIFICATE_FILE = "client_certificate_file"
KEY_FILE = "client_key_file"
CERTIFICATE_PAIR = "client_certificate"

_KEY_DIGESTS: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()


class _EncryptedKey(Exception):
    """Raised in place of a key's password: OpenSSL would otherwise prompt for it on the
    terminal, and a service would hang there."""


def _no_password() -> bytes:
    raise _EncryptedKey


def load_client_certificate(
    http: ModuleType, certificate_file: str, key_file: str
) -> ssl.SSLContext:
    """An SSL context that trusts what `http`'s own clients trust (``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set, else certifi's bundle) and presents the certificate in
    `certificate_file` with its unencrypted private key in `key_file`, both PEM.

    A `ConfigurationError` names the file at fault by its `setting`, never a path or content;
    and as the key is read only once all else went well, no error's frames hold it.
    """
    for path, setting in ((certificate_file, CERTIFICATE_FILE), (key_file, KEY_FILE)):
        try:
            Path(path).open("rb").close()
        except OSError as exc:
            raise ConfigurationError(f"cannot read it ({exc.strerror})", setting=setting) from None
    context: ssl.SSLContext = http.create_ssl_context()
    try:
        context.load_cert_chain(certificate_file, key_file, password=_no_password)
    except _EncryptedKey:
        raise ConfigurationError(
            "the private key is encrypted: give it unencrypted, readable by its owner only, or "
            "build an ssl.SSLContext yourself and pass it as ssl_context=",
            setting=KEY_FILE,
        ) from None
    except OSError as exc:  # ssl.SSLError among them; OpenSSL's reason quotes no content
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigurationError(
            f"they are not a PEM certificate and its private key ({reason})",
            setting=CERTIFICATE_PAIR,
        ) from None
    _KEY_DIGESTS[context] = _key_digest(key_file)
    return context


# A PEM private key block, in a file that may hold a certificate beside it.
_KEY_BLOCK = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


def _key_digest(key_file: str) -> bytes:
    """The SHA-256 of the private key in `key_file`, as PKCS#8 DER: the same key gives the
    same digest whatever else the file holds (a certificate beside it, which a renewal
    changes), in PKCS#1 or PKCS#8, over any line endings. The key lives in this frame only,
    which fails (if it does) before reading it."""
    from cryptography.hazmat.primitives import serialization

    try:
        contents = Path(key_file).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read it ({exc.strerror})", setting=KEY_FILE) from None
    block = _KEY_BLOCK.search(contents)
    try:
        key = serialization.load_pem_private_key(block[0] if block else contents, None)
    except (ValueError, TypeError):  # a key OpenSSL reads and cryptography does not
        return hashlib.sha256(contents).digest()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return hashlib.sha256(der).digest()


def client_key_digest(context: ssl.SSLContext | None) -> bytes | None:
    """The digest of `context`'s private key if `load_client_certificate` made it; else None:
    the key is not in this process."""
    return None if context is None else _KEY_DIGESTS.get(context)
