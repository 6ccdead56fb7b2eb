"""Access tokens for managed identities, signed by the node: RS256 JWTs.

The smallest real :class:`~skiff.core.identity.IdentityTokens`: an RSA key made
on first use under the data root (``keys/identity.pem``, owner-only, as the node
key), and tokens whose claims are those Entra ID puts in a managed identity's
token (``aud``, ``iss``, ``iat``, ``nbf``, ``exp``, ``oid``, ``sub``, ``tid``,
``appid``, ``idtyp``). Its public key is :meth:`LocalTokens.public_jwk`, for
whoever verifies them. The sign-in side of skiff, with its own keys and
``jwks_uri``, replaces it in ``skiff.server``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from skiff.core.identity import IssuedToken
from skiff.errors import SkiffError

#: How long a managed identity's token is valid: Entra ID gives them 24 hours.
TOKEN_LIFETIME_S = 24 * 3600
#: Seconds of clock skew a token allows before its issue time (``nbf``).
CLOCK_SKEW_S = 300


class TokenKeyError(SkiffError):
    """The identity signing key cannot be read or made."""

    code = "IdentityKeyUnavailable"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class LocalTokens:
    """Managed identities' tokens, signed with this node's identity key.

    ``tenant`` is the one tenant every subscription of this node belongs to (a GUID);
    ``issuer`` the base of the tokens' ``iss`` (``<issuer>/<tenant>/``)."""

    def __init__(self, key_path: Path, *, tenant: str, issuer: str,
                 lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        self.tenant = tenant
        self.issuer = issuer.rstrip("/")
        self.lifetime_s = lifetime_s
        self._path = key_path
        self._lock = threading.Lock()
        self._loaded: tuple[rsa.RSAPrivateKey, dict[str, str]] | None = None

    def _signing_key(self) -> tuple[rsa.RSAPrivateKey, dict[str, str]]:
        """The key and its JWK, read (or made) at the first token: a node whose groups
        never ask for one never makes it."""
        with self._lock:
            if self._loaded is None:
                key = _load_or_create(self._path)
                numbers = key.public_key().public_numbers()
                jwk = {"kty": "RSA", "use": "sig", "alg": "RS256",
                       "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
                thumb = json.dumps({k: jwk[k] for k in ("e", "kty", "n")},
                                   separators=(",", ":"), sort_keys=True)
                jwk["kid"] = b64url(hashlib.sha256(thumb.encode()).digest())  # RFC 7638
                self._loaded = (key, jwk)
            return self._loaded

    @staticmethod
    def node_tenant(name: str) -> str:
        """The tenant GUID of a node whose tenant is called ``name``."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"skiff:tenant:{name}"))

    def tenant_of(self, subscription: str) -> str:
        return self.tenant

    def public_jwk(self) -> dict[str, str]:
        """The verifying key, as a JSON Web Key."""
        return dict(self._signing_key()[1])

    def issue(self, principal_object_id: str, tenant_id: str, client_id: str,
              audience: str) -> IssuedToken:
        key, jwk = self._signing_key()
        now = int(time.time())
        expires_on = now + self.lifetime_s
        claims: dict[str, Any] = {
            "aud": audience, "iss": f"{self.issuer}/{tenant_id}/", "iat": now,
            "nbf": now - CLOCK_SKEW_S, "exp": expires_on, "appid": client_id,
            "appidacr": "2", "idtyp": "app", "oid": principal_object_id,
            "sub": principal_object_id, "tid": tenant_id, "ver": "1.0",
        }
        header = {"alg": "RS256", "typ": "JWT", "kid": jwk["kid"]}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return IssuedToken(f"{signing_input}.{b64url(signature)}", expires_on)


def _load_or_create(path: Path) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise TokenKeyError(f"cannot read the identity key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise TokenKeyError(f"the identity key {path} is not an RSA key in PEM") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TokenKeyError(f"the identity key {path} is not an RSA key")
    return key


def _create(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: that one is the key
        return _load_or_create(path)
    except OSError as exc:
        raise TokenKeyError(f"cannot make the identity key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key
