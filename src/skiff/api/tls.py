"""skiff's own certificate authority, so the API speaks HTTPS out of the box.

ARM is HTTPS, and the Azure SDK refuses to send a bearer token over plain
HTTP. On first start skiff makes a CA (its certificate in
``<data root>/ca.pem``, which clients are told to trust) and a server
certificate from it for the listen address, ``localhost`` and 127.0.0.1.
Keys are written 0600. An operator's own certificate replaces all of this
(``--tls-cert``/``--tls-key``). The groups' gateways, where the API is served
to the groups when the operator lets it be (:mod:`skiff.gateway`), get a
certificate of skiff's CA each, naming the gateway's address alone.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_YEAR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast to make, accepted everywhere


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        address = ipaddress.ip_address(host)
        if address.is_unspecified:
            return names
        if x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    return names


def ensure_certificates(data_root: Path, host: str) -> TlsFiles:
    """The CA and a server certificate valid for ``host``; made once, reused after.
    A server certificate that does not name ``host`` is made again."""
    files = TlsFiles(data_root / "ca.pem", data_root / "server.pem", data_root / "server.key")
    return _ensure_leaf(data_root, files, _names(host))


def ensure_address_certificate(data_root: Path, address: str) -> TlsFiles:
    """A server certificate of skiff's CA (made if there is none yet) for one IP
    ``address`` alone: a group's gateway, where :mod:`skiff.gateway` serves the API.
    Kept in ``<data root>/gateways/`` (0700), made once, reused after."""
    ip = ipaddress.ip_address(address)
    folder = data_root / "gateways"
    folder.mkdir(mode=0o700, exist_ok=True)
    files = TlsFiles(data_root / "ca.pem", folder / f"{ip}.pem", folder / f"{ip}.key")
    return _ensure_leaf(data_root, files, [x509.IPAddress(ip)])


def _ensure_leaf(data_root: Path, files: TlsFiles, wanted: list[x509.GeneralName]) -> TlsFiles:
    ca_key_path = data_root / "ca.key"
    now = datetime.datetime.now(datetime.UTC)
    if files.ca.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
    else:
        ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff local CA")])
        ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + 10 * _YEAR)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=False, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                       decipher_only=False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        _write_private(ca_key_path, _pem_key(ca_key))
        files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        for stale in (files.cert, files.key):
            stale.unlink(missing_ok=True)
    if files.cert.exists() and files.key.exists():
        current = x509.load_pem_x509_certificate(files.cert.read_bytes())
        try:
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            if all(n in san.value for n in wanted) and current.not_valid_after_utc > now:
                current.verify_directly_issued_by(ca_cert)  # not one of an earlier CA
                return files
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
            pass
    key = _key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + 2 * _YEAR)
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    _write_private(files.key, _pem_key(key))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files
