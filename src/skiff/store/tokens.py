"""API tokens: who may call, and which subscription they may see.

A token's secret is shown once, when it is made, and only its SHA-256 is
stored, so a copy of the data root (a backup, a stolen disk) holds no usable
credential. A fast hash is right here, unlike for passwords: slow hashes
(bcrypt, scrypt, argon2) exist to make guessing *low-entropy* secrets
expensive, while these secrets are 256 random bits, which no amount of
hashing speed lets anyone guess. A fast hash also lets a check be an
indexed look-up of the hash rather than a scan with a slow compare per
token, on every request.

The look-up is constant-time in the way that matters: timing can at most
reveal how much of a *hash* an attacker's guess shares with a stored one,
and turning that into a secret would take SHA-256 preimages. The prefix
(``skf_``) lets secret scanners and humans recognise a leaked skiff token.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from skiff.store.database import Database
from skiff.store.records import TokenRecord

#: Every secret starts with this, as GitHub's ``ghp_`` does.
TOKEN_PREFIX = "skf_"  # noqa: S105 (a prefix, not a secret)
_SECRET_BYTES = 32  # 256 bits of entropy


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokensMixin(Database):
    """The store's ``tokens`` table."""

    def create_token(self, subscription: str | None, name: str) -> tuple[TokenRecord, str]:
        """Make a token for ``subscription`` (None: an admin token).

        Returns its record and its secret, which is not stored and cannot be
        shown again.
        """
        secret = TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        record = TokenRecord(id=uuid.uuid4().hex, subscription=subscription, name=name,
                             created_at=self.now())
        with self.write() as conn:
            conn.execute(
                "INSERT INTO tokens (id, subscription, name, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (record.id, subscription, name, _digest(secret), record.created_at),
            )
        return record, secret

    def check_token(self, secret: str) -> TokenRecord | None:
        """The token whose secret this is, or None (unknown, revoked or malformed)."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with self.read() as conn:
            row = conn.execute(
                "SELECT id, subscription, name, created_at FROM tokens WHERE secret_sha256 = ?",
                (_digest(secret),),
            ).fetchone()
        return None if row is None else TokenRecord.from_row(row)

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, oldest first (no secrets: the store has none)."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT id, subscription, name, created_at FROM tokens ORDER BY created_at, rowid"
            ).fetchall()
        return [TokenRecord.from_row(row) for row in rows]

    def revoke_token(self, id: str) -> bool:  # the interface names it id
        """Delete a token: its secret stops working at once. Returns whether it existed."""
        with self.write() as conn:
            return conn.execute("DELETE FROM tokens WHERE id = ?", (id,)).rowcount == 1
