"""Certificates for mutual TLS with a served emulator: a test CA and what it issues.

One certificate authority per process, made on first use, issues both the certificate that
``MosaicEmulator.serve(tls=True)`` presents for 127.0.0.1 and the client certificates of
`make_client_certificate`. A single authority is needed because Python's `ssl` cannot ask for
a client certificate without verifying it against trusted issuers: the server trusts this one,
and the emulator then tells clients apart by their certificate's SHA-256 fingerprint, as
Mosaic does for ``self_signed_tls_client_auth``.

cryptography (a dependency of joserfc) is imported only when a certificate is made.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

# What a server certificate names unless told otherwise: where `serve(tls=True)` listens.
_SERVER_HOSTS = ("127.0.0.1", "localhost")
# Issued slightly in the past, so that a clock a little behind still accepts them; long enough
# for any test run, short enough to be plainly throwaway.
_BACKDATE = datetime.timedelta(minutes=5)
_VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A client certificate and its private key in PEM files, for mutual TLS with an emulator
    served by ``serve(tls=True)``. Made by `make_client_certificate`."""

    cert_path: Path
    """The certificate, PEM."""
    key_path: Path
    """Its unencrypted private key, PEM."""
    sha256: str
    """The certificate's SHA-256 fingerprint in lowercase hex, as `register_client` takes it."""


def make_client_certificate(
    directory: str | os.PathLike[str], *, name: str = "client"
) -> ClientCertificate:
    """Make a client certificate and key in `directory`: ``{name}-cert.pem``, ``{name}-key.pem``.

    Register its `ClientCertificate.sha256` with ``register_client(certificate_sha256=...)``,
    then present it with `client_ssl_context` to an emulator served by ``serve(tls=True)``,
    which accepts the certificates this function makes (and those of its own issuer only).
    Refuses to overwrite existing files.
    """
    if not name or Path(name).name != name:
        raise ConfigurationError(f"name must be a plain file name prefix, not {name!r}")
    folder = Path(directory)
    certificate, key = _authority().issue(name)
    cert_path, key_path = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    try:
        _write_new_file(key_path, key, private=True)
        _write_new_file(cert_path, certificate, private=False)
    except FileExistsError as exc:
        raise ConfigurationError(
            f"{exc.filename} exists already: give each certificate its own name"
        ) from exc
    return ClientCertificate(
        cert_path=cert_path, key_path=key_path, sha256=certificate_sha256(certificate)
    )


def client_ssl_context(certificate: ClientCertificate | None = None) -> ssl.SSLContext:
    """An SSL context for clients of an emulator served by ``serve(tls=True)``.

    It trusts the emulator's certificate for 127.0.0.1 (and nothing else) and, given a
    `certificate`, presents it for mutual TLS. Pass it as ``httpx.AsyncClient(verify=...)``.
    """
    context = ssl.create_default_context(cadata=_authority().certificate_pem.decode("ascii"))
    if certificate is not None:
        context.load_cert_chain(certificate.cert_path, certificate.key_path)
    return context


def certificate_sha256(certificate: bytes | str) -> str:
    """The SHA-256 fingerprint, in lowercase hex, of a certificate in PEM (text or bytes) or DER."""
    if isinstance(certificate, bytes) and not certificate.lstrip().startswith(b"-----BEGIN"):
        der = certificate
    else:
        text = certificate.decode("ascii") if isinstance(certificate, bytes) else certificate
        try:
            der = ssl.PEM_cert_to_DER_cert(text.strip())
        except ValueError as exc:
            raise ConfigurationError("certificate is not a PEM or DER certificate") from exc
    return hashlib.sha256(der).hexdigest()


def normalize_sha256(fingerprint: str) -> str:
    """A SHA-256 fingerprint in lowercase hex; accepts upper case and colon-separated bytes."""
    normalized = fingerprint.replace(":", "").lower()
    if re.fullmatch("[0-9a-f]{64}", normalized) is None:
        raise ConfigurationError(
            "certificate_sha256 must be a SHA-256 fingerprint: 64 hex digits, colons allowed"
        )
    return normalized


@dataclass(frozen=True, slots=True)
class ServerCertificateFiles:
    """What a TLS server needs: its certificate and key, and the CA to verify clients with."""

    cert_path: Path
    key_path: Path
    client_ca_path: Path


def write_server_certificate(
    directory: Path, *, hosts: Sequence[str] = _SERVER_HOSTS
) -> ServerCertificateFiles:
    """Write a new certificate and key for `hosts` (IP addresses or DNS names; by default
    127.0.0.1 and localhost), and the CA, to `directory`."""
    authority = _authority()
    certificate, key = authority.issue(hosts[0], server_hosts=hosts)
    files = ServerCertificateFiles(
        cert_path=directory / "server-cert.pem",
        key_path=directory / "server-key.pem",
        client_ca_path=directory / "ca-cert.pem",
    )
    _write_new_file(files.key_path, key, private=True)
    _write_new_file(files.cert_path, certificate, private=False)
    _write_new_file(files.client_ca_path, authority.certificate_pem, private=False)
    return files


class _Authority:
    """A certificate authority with an EC P-256 key (fast to make, accepted everywhere)."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self._certificate = _signed_certificate(
            "Mosaic emulator test CA",
            self._key.public_key(),
            signer=self._key,
            issuer=None,
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (_key_usage(key_cert_sign=True, crl_sign=True), True),
            ],
        )
        self.certificate_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        """The authority's certificate, PEM: what a party trusts to accept what it issues."""

    def issue(self, common_name: str, *, server_hosts: Sequence[str] = ()) -> tuple[bytes, bytes]:
        """A new certificate for `common_name` signed by this authority, and its key, in PEM.

        With `server_hosts` (IP addresses or DNS names), a server's certificate for them;
        without, a certificate for client auth.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_hosts else ExtendedKeyUsageOID.CLIENT_AUTH
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(), True),
            (x509.ExtendedKeyUsage([usage]), False),
        ]
        if server_hosts:
            names = [_general_name(host) for host in server_hosts]
            extensions.append((x509.SubjectAlternativeName(names), False))
        certificate = _signed_certificate(
            common_name,
            key.public_key(),
            signer=self._key,
            issuer=self._certificate,
            extensions=extensions,
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _signed_certificate(
    common_name: str,
    public_key: EllipticCurvePublicKey,
    *,
    signer: EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """A certificate for `public_key` signed by `signer`, the key of `issuer` (None: itself).

    `extensions` are (extension, critical) pairs, added to the key identifiers every
    certificate here has: Python 3.13's default client context verifies strictly
    (``VERIFY_X509_STRICT``), which wants them.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def _general_name(host: str) -> x509.GeneralName:
    """`host` as a certificate names it: an IP address, or else a DNS name."""
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(*, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    """Key usage allowing signatures (all TLS needs of an EC key), and what else is asked."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


_authority_lock = threading.Lock()
_the_authority: _Authority | None = None


def _authority() -> _Authority:
    """The process's test CA, made on first use: every certificate here must share it."""
    global _the_authority  # one per process is the point: see the module's docstring
    with _authority_lock:
        if _the_authority is None:
            _the_authority = _Authority()
        return _the_authority


def _write_new_file(path: Path, content: bytes, *, private: bool) -> None:
    """Write `content` to a file that must not exist yet; a key is readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
