"""SharedKey and SAS for the File service, as Azure Storage defines them.

SharedKey (versions 2015-02-21 and later): ``Authorization: SharedKey
<account>:<base64 HMAC-SHA256 of the string-to-sign>``, the string-to-sign being
the verb, eleven standard headers, the ``x-ms-`` headers (lowercase, sorted,
``name:value``) and the canonicalized resource (``/<account><path as sent>`` then
each query parameter as ``\\n<name>:<value>``, names lowercase and sorted). The
path is the one on the wire, so path-style addresses sign ``/<account>/<account>/...``.

SAS: a service SAS (``sr`` = ``s`` or ``f``; resource ``/file/<account>/<share>[/path]``)
or an account SAS (``ss`` holds ``f``, ``srt`` the resource types); both are checked
for signature, time window, protocol, address and permission. Keys and signatures are
never logged or echoed.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

#: The standard headers signed, in order ("Range" last).
_SIGNED = ("content-encoding", "content-language", "content-length", "content-md5",
           "content-type", "date", "if-modified-since", "if-match", "if-none-match",
           "if-unmodified-since", "range")


class AuthFailed(Exception):
    """The request is not authenticated (403 AuthenticationFailed); the message says why
    in Azure's words, never naming a key or a signature."""


class NotPermitted(Exception):
    """A valid SAS that does not allow this operation (403 AuthorizationPermissionMismatch
    and friends): ``code`` is Azure's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def sign(key: str, text: str) -> str:
    """Base64 HMAC-SHA256 of ``text`` under the base64 ``key``."""
    raw = base64.b64decode(key)
    return base64.b64encode(hmac.new(raw, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def _header_orders(names: list[str]) -> list[list[str]]:
    """The sort orders a signer may have used for the x-ms- headers: plain, and the
    service's (hyphens weigh nothing at the first level, as the SDK emulates)."""
    plain = sorted(names)
    service = sorted(names, key=lambda n: (n.replace("-", ""), n))
    return [plain] if plain == service else [plain, service]


def string_to_sign(method: str, headers: Mapping[str, str], account: str, raw_path: str,
                   query: Sequence[tuple[str, str]], *, with_range: bool = True,
                   order: Iterable[str] | None = None) -> str:
    """The SharedKey string-to-sign. ``headers`` lowercase-keyed; ``raw_path`` as sent;
    ``query`` decoded pairs. ``with_range``: sign the Range header (Azure does; the
    Python SDK signs it empty)."""
    parts = [method.upper()]
    for name in _SIGNED:
        value = headers.get(name, "")
        if name == "content-length" and value == "0":
            value = ""
        if name == "range" and not with_range:
            value = ""
        parts.append(value)
    text = "\n".join(parts) + "\n"
    xms = [n for n in headers if n.startswith("x-ms-")]
    for name in order if order is not None else sorted(xms):
        text += f"{name}:{headers[name]}\n"
    text += f"/{account}{raw_path}"
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name.lower(), []).append(value)
    for name in sorted(grouped):
        text += f"\n{name}:{','.join(sorted(grouped[name]))}"
    return text


def shared_key_header(account: str, key: str, method: str, headers: Mapping[str, str],
                      raw_path: str, query: Sequence[tuple[str, str]]) -> str:
    """The Authorization header value a client sends (headers lowercase-keyed)."""
    text = string_to_sign(method, headers, account, raw_path, query)
    return f"SharedKey {account}:{sign(key, text)}"


_MISMATCH = ("Server failed to authenticate the request. Make sure the value of "
             "Authorization header is formed correctly including the signature.")


def check_shared_key(authorization: str, keys: Sequence[str], account: str, method: str,
                     headers: Mapping[str, str], raw_path: str,
                     query: Sequence[tuple[str, str]]) -> None:
    """Nothing if ``authorization`` is a valid SharedKey signature by one of ``keys``;
    AuthFailed otherwise."""
    scheme, _, credential = authorization.partition(" ")
    name, _, signature = credential.strip().rpartition(":")
    if scheme not in ("SharedKey", "SharedKeyLite") or not signature:
        raise AuthFailed(_MISMATCH)
    if name != account:
        raise AuthFailed(_MISMATCH + f" The account name {name!r} does not match the "
                         "account of the request.")
    if scheme == "SharedKeyLite":
        raise AuthFailed(_MISMATCH + " SharedKeyLite is not supported.")
    xms = [n for n in headers if n.startswith("x-ms-")]
    given = signature.encode()
    for order in _header_orders(xms):
        for with_range in (True, False):
            text = string_to_sign(method, headers, account, raw_path, query,
                                  with_range=with_range, order=order)
            for key in keys:
                try:
                    expected = sign(key, text).encode()
                except ValueError:
                    continue
                if hmac.compare_digest(expected, given):
                    return
            if not headers.get("range"):
                break
    raise AuthFailed(_MISMATCH + " The MAC signature found in the HTTP request is not "
                     "the same as any computed signature.")


#: How far a SharedKey request's date may be from the server's clock (Azure's 15 minutes):
#: a captured request cannot be replayed later.
MAX_SKEW_S = 15 * 60


def check_date(headers: Mapping[str, str], now: float) -> None:
    """AuthFailed unless the request's ``x-ms-date`` (else ``Date``) is within
    :data:`MAX_SKEW_S` of ``now``."""
    text = headers.get("x-ms-date") or headers.get("date")
    if not text:
        raise AuthFailed(_MISMATCH + " The x-ms-date or Date header is missing.")
    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        raise AuthFailed(_MISMATCH + f" The date {text!r} is not an RFC 1123 date.") from None
    if when < now - MAX_SKEW_S:
        raise AuthFailed(_MISMATCH + f" Request date header too old: {text!r}.")
    if when > now + MAX_SKEW_S:
        raise AuthFailed(_MISMATCH + f" Request date header too far in the future: {text!r}.")


# --- SAS -------------------------------------------------------------------------------

#: What each operation needs of a SAS: (resource type for account SAS, permission letter).
#: Resource types: s(ervice), c(ontainer = share), o(bject = file or directory).


@dataclass(frozen=True)
class Access:
    """What a request does, for SAS checks: the account SAS resource type (``s``, ``c``,
    ``o``), the permission letter it needs (``r``, ``w``, ``d``, ``l``, ``c``), and the
    share and path it acts on (for service SAS scopes)."""

    resource_type: str
    permission: str
    share: str = ""
    path: str = ""


def _parse_time(value: str) -> datetime.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise AuthFailed(f"Signature fields not well formed: bad time {value!r}.") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when


def _check_common(q: Mapping[str, str], client_ip: str, scheme: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if "se" not in q:
        raise AuthFailed("Signature fields not well formed: se is missing.")
    if now > _parse_time(q["se"]):
        raise AuthFailed("Signed expiry time [" + q["se"] + "] must be after signed start "
                         "time and the current time.")
    if q.get("st") and now + datetime.timedelta(minutes=0) < _parse_time(q["st"]):
        raise AuthFailed("Signed start time [" + q["st"] + "] is in the future.")
    protocol = q.get("spr", "")
    if protocol and scheme not in protocol.split(","):
        raise NotPermitted("AuthorizationProtocolMismatch",
                           "This request is not authorized to perform this operation "
                           "using this protocol.")
    sip = q.get("sip", "")
    if sip:
        low, _, high = sip.partition("-")
        try:
            address = int(ipaddress.ip_address(client_ip))
            first = ipaddress.ip_address(low)
            last = ipaddress.ip_address(high or low)
            inside = (first.version == last.version == ipaddress.ip_address(client_ip).version
                      and int(first) <= address <= int(last))
        except (ValueError, TypeError):
            inside = False
        if not inside:
            raise NotPermitted("AuthorizationSourceIPMismatch",
                               "This request is not authorized to perform this operation "
                               "using this source IP " + client_ip + ".")


def _permission_mismatch() -> NotPermitted:
    return NotPermitted("AuthorizationPermissionMismatch",
                        "This request is not authorized to perform this operation using "
                        "this permission.")


def account_sas_string(account: str, q: Mapping[str, str]) -> str:
    fields = [account] + [q.get(n, "") for n in ("sp", "ss", "srt", "st", "se", "sip",
                                                  "spr", "sv")]
    return "\n".join(fields) + "\n" + "\n"  # the encryption scope, always empty for files


def service_sas_string(account: str, q: Mapping[str, str], resource: str) -> str:
    fields = [q.get("sp", ""), q.get("st", ""), q.get("se", ""), f"/file/{account}{resource}",
              q.get("si", ""), q.get("sip", ""), q.get("spr", ""), q.get("sv", ""),
              q.get("rscc", ""), q.get("rscd", ""), q.get("rsce", ""), q.get("rscl", ""),
              q.get("rsct", "")]
    return "\n".join(fields)


def check_sas(q: Mapping[str, str], keys: Sequence[str], account: str, access: Access,
              *, client_ip: str, scheme: str = "https") -> None:
    """Nothing if the SAS in ``q`` (the request's decoded query) is valid and allows
    ``access``; AuthFailed or NotPermitted otherwise."""
    given = q.get("sig", "").encode()
    if "sr" in q:
        if q.get("si"):
            raise AuthFailed("Stored access policies (si) are not supported.")
        if q["sr"] == "s":
            resource = f"/{access.share}"
        elif q["sr"] == "f":
            resource = f"/{access.share}/{access.path}".rstrip("/")
        else:
            raise AuthFailed("Signature fields not well formed: sr must be s or f.")
        text = service_sas_string(account, q, resource)
        # a share SAS signs the share (any file inside it); a file SAS signs the file only
        if not any(hmac.compare_digest(sign(k, text).encode(), given) for k in keys):
            raise AuthFailed(_MISMATCH + " Signature did not match.")
        _check_common(q, client_ip, scheme)
        if q["sr"] == "f" and access.resource_type != "o":
            raise _permission_mismatch()
        if access.resource_type == "s":
            raise _permission_mismatch()
        allowed = q.get("sp", "")
        if access.permission == "l" and access.resource_type != "o" and "l" in allowed:
            return
        if access.permission not in allowed:
            raise _permission_mismatch()
        return
    if "ss" in q or "srt" in q:
        text = account_sas_string(account, q)
        if not any(hmac.compare_digest(sign(k, text).encode(), given) for k in keys):
            raise AuthFailed(_MISMATCH + " Signature did not match.")
        _check_common(q, client_ip, scheme)
        if "f" not in q.get("ss", ""):
            raise NotPermitted("AuthorizationServiceMismatch",
                               "This request is not authorized to perform this operation "
                               "using this service.")
        if access.resource_type not in q.get("srt", ""):
            raise NotPermitted("AuthorizationResourceTypeMismatch",
                               "This request is not authorized to perform this operation "
                               "using this resource type.")
        allowed = q.get("sp", "")
        need = access.permission
        if need == "c" and "w" in allowed:  # create is implied by write
            return
        if need not in allowed:
            raise _permission_mismatch()
        return
    raise AuthFailed(_MISMATCH + " The signature fields are missing.")


def decoded_query(raw: str) -> list[tuple[str, str]]:
    """The query's pairs, names and values percent-decoded ('+' kept, as Azure does)."""
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs
