"""skiff as its own identity provider: access tokens as Entra ID issues them.

A client that signs in to Azure (az, the SDKs' credential classes, MSAL) asks an
Entra ID token endpoint for an access token and sends it to ARM as a bearer token;
ARM checks the token's signature against the keys Entra publishes. skiff plays both
parts: :class:`Issuer` makes the tokens (JWTs signed RS256) and checks them.

The signing key is an RSA key of the node's, in ``<keys dir>/signing.pem`` beside
the node key (0600, made once, as :mod:`skiff.store.sealing` makes the node key); its
public half is published at the jwks_uri, named by its ``kid`` (the key's RFC 7638
thumbprint, so it is the same every start). A token carries Entra's claims: ``aud``,
``iss``, ``iat``, ``nbf``, ``exp``, ``tid`` (the node's tenant), ``oid`` (the
principal's object id, what role assignments name), ``appid``, ``sub``.

Checking costs a signature verification (~50 µs for RSA-2048), so verified tokens are
remembered (by their text, until they expire); the expiry is read on every use.

Managed identities' tokens (those a group's containers get from the identity endpoint
inside it) are signed by the same :class:`Issuer`, through :class:`ManagedIdentityTokens`:
the API takes them as it takes a service principal's, and a role assigned to an
identity's principal applies to the group that holds it, as in Azure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from skiff.core.identity import IssuedToken
from skiff.errors import SkiffError

#: Seconds a token is valid (Entra's default for client credentials: about an hour).
TOKEN_LIFETIME_S = 3599
#: Seconds a managed identity's token is valid (Entra gives them about 24 hours).
MANAGED_TOKEN_LIFETIME_S = 24 * 3600
#: Seconds of clock skew allowed on ``nbf`` and ``iat``.
SKEW_S = 300
_CACHE_MAX = 4096
_KEY_FILE = "signing.pem"


class TokenRejected(SkiffError):
    """A bearer token skiff does not accept; ``code`` is ARM's (InvalidAuthenticationToken,
    ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    oid: str
    appid: str
    tid: str
    aud: str
    exp: float
    name: str = ""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Issuer:
    """Issues and checks the node's access tokens. Thread-safe."""

    def __init__(self, key_dir: Path, tenant: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.tenant = tenant
        self._clock = clock
        self._key = load_signing_key(Path(key_dir) / _KEY_FILE)
        self._public = self._key.public_key()
        numbers = self._public.public_numbers()
        self._jwk = {"kty": "RSA", "e": b64url(_int_bytes(numbers.e)),
                     "n": b64url(_int_bytes(numbers.n))}
        canonical = json.dumps({k: self._jwk[k] for k in ("e", "kty", "n")},
                               separators=(",", ":"), sort_keys=True)
        self.kid = b64url(hashlib.sha256(canonical.encode()).digest())
        self._verified: dict[str, Claims] = {}
        self._lock = threading.Lock()

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of the jwks_uri."""
        return {"keys": [{**self._jwk, "use": "sig", "kid": self.kid, "alg": "RS256",
                          "x5t": self.kid}]}

    def issue(self, *, oid: str, appid: str, aud: str, iss: str, name: str = "",
              lifetime_s: int = TOKEN_LIFETIME_S) -> tuple[str, int]:
        """A signed access token, and its lifetime in seconds."""
        now = int(self._clock())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid}
        claims: dict[str, Any] = {
            "aud": aud, "iss": iss, "iat": now, "nbf": now, "exp": now + lifetime_s,
            "aio": "", "appid": appid, "appidacr": "1", "idp": iss, "idtyp": "app",
            "oid": oid, "sub": oid, "tid": self.tenant, "uti": uuid.uuid4().hex,
            "ver": "1.0"}
        if name:
            claims["app_displayname"] = name
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                   hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}", lifetime_s

    def verify(self, token: str) -> Claims:
        """The token's claims if skiff signed it and it is valid now; else
        :class:`TokenRejected`."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token)
            with self._lock:
                if len(self._verified) >= _CACHE_MAX:
                    now = self._clock()
                    self._verified = {k: v for k, v in self._verified.items() if v.exp > now}
                    if len(self._verified) >= _CACHE_MAX:
                        self._verified.clear()
                self._verified[token] = claims
        now = self._clock()
        if claims.exp <= now:
            raise TokenRejected("ExpiredAuthenticationToken",
                                f"The access token expiry UTC time '{_arm_time(claims.exp)}' "
                                f"is earlier than current UTC time '{_arm_time(now)}'.")
        return claims

    def _check(self, token: str) -> Claims:
        invalid = TokenRejected("InvalidAuthenticationToken", "The access token is invalid.")
        try:
            head, body, signature = token.split(".")
            header = json.loads(_unb64url(head))
            payload = json.loads(_unb64url(body))
            raw_signature = _unb64url(signature)
        except (ValueError, UnicodeDecodeError):
            raise invalid from None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise invalid
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise invalid  # another issuer's key, or "none": never trusted
        try:
            self._public.verify(raw_signature, f"{head}.{body}".encode("ascii"),
                                padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise invalid from None
        try:
            claims = Claims(oid=str(payload["oid"]), appid=str(payload.get("appid", "")),
                            tid=str(payload["tid"]), aud=str(payload["aud"]),
                            exp=float(payload["exp"]),
                            name=str(payload.get("app_displayname", "")))
            not_before = float(payload.get("nbf", 0))
        except (KeyError, TypeError, ValueError):
            raise invalid from None
        if claims.tid != self.tenant or not_before > self._clock() + SKEW_S:
            raise invalid
        return claims


def _arm_time(when: float) -> str:
    """A time as ARM's messages show it: ``3/19/2023 8:55:46 AM``."""
    moment = datetime.fromtimestamp(when, UTC)
    hour = moment.hour % 12 or 12
    return (f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:"
            f"{moment.second:02d} {'AM' if moment.hour < 12 else 'PM'}")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def load_signing_key(path: Path) -> rsa.RSAPrivateKey:
    """The node's signing key in ``path``, made there first if there is none (0600; two
    processes making it at once end with one: each links its own into place)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(parents=True)
            os.chmod(directory, 0o700)
        tmp = directory / f".{path.name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    except OSError as exc:
        raise SkiffError(f"cannot make the signing key {path}: {exc.strerror or exc}") from exc
    return _read_key(path)


def _read_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SkiffError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise SkiffError(f"the signing key {path} is open to others (mode {mode:04o}): "
                             f"make it readable by its owner alone (chmod 600 {path})")
        pem = f.read(16384)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SkiffError(f"the signing key {path} is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SkiffError(f"the signing key {path} is not an RSA key")
    return key


def issuer_url(base: str, tenant: str) -> str:
    """A token's ``iss``: the node's tenant under the address skiff is reached at (the
    form of Entra's v2.0 issuer)."""
    return f"{base.rstrip('/')}/{tenant}/v2.0"


class ManagedIdentityTokens:
    """Managed identities' tokens (:class:`~skiff.core.identity.IdentityTokens`), signed
    by the node's :class:`Issuer`: every identity is in the node's tenant, and a token
    for skiff's own API (or Azure's resource manager audience) is accepted there for the
    identity's principal."""

    def __init__(self, issuer: Issuer, base_url: str) -> None:
        self.issuer = issuer
        self.base_url = base_url

    def issue(self, principal_object_id: str, tenant_id: str, client_id: str,
              audience: str) -> IssuedToken:
        now = int(time.time())
        token, lifetime = self.issuer.issue(
            oid=principal_object_id, appid=client_id, aud=audience,
            iss=issuer_url(self.base_url, self.issuer.tenant),
            lifetime_s=MANAGED_TOKEN_LIFETIME_S)
        return IssuedToken(token, now + lifetime)

    def tenant_of(self, subscription: str) -> str:
        return self.issuer.tenant
