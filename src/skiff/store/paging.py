"""Paging markers for container group listings.

ARM lists page through ``nextLink``, whose ``$skipToken`` the client sends
back untouched. Counting rows (OFFSET) would skip or repeat groups when one
is created or deleted between two pages, and costs a scan of every earlier
row; so a marker holds the *key* of the last row handed out, and the next
page starts past it in the index (keyset paging). The key is wrapped in
base64 to keep it opaque: clients must not build markers, and a marker that
does not decode is a 400, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import json

from skiff.store.errors import InvalidSkipToken
from skiff.store.records import name_key


def after_clause(marker: str, sub: str | None, rg: str | None, params: list[object]) -> str:
    """The WHERE clause for rows past ``marker``, with its parameters added to ``params``.

    Only the columns the listing does not fix are compared, so that SQLite
    seeks straight to the marker in its index instead of scanning to it. A
    marker from another listing (another subscription or resource group) is
    refused.
    """
    m_sub, m_rg, m_name = decode_marker(marker)
    if sub is None:
        params.extend((m_sub, m_rg, m_name))
        return "(subscription, rg_key, name_key) > (?, ?, ?)"
    if m_sub != sub or (rg is not None and m_rg != name_key(rg)):
        raise InvalidSkipToken()
    if rg is None:
        params.extend((m_rg, m_name))
        return "(rg_key, name_key) > (?, ?)"
    params.append(m_name)
    return "name_key > ?"


def encode_marker(*key: str) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_marker(marker: str) -> tuple[str, str, str]:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError, JSONDecodeError too
        raise InvalidSkipToken() from exc
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
        raise InvalidSkipToken()
    return key[0], key[1], key[2]
