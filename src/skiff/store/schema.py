"""The store's tables, as an ordered list of migrations.

A skiff data root outlives the code that wrote it: an upgrade must open the
old file and bring it forward, and a downgrade must not scribble over a file
it does not understand. So the schema is never declared whole; it is the sum
of :data:`MIGRATIONS`, applied in order, and the ``schema_version`` table
records how many have been applied. Migration *n* (1-based) is
``MIGRATIONS[n - 1]``; a released migration is never edited, only followed
by a new one.

Each migration runs in one ``BEGIN IMMEDIATE`` transaction together with the
version bump (SQLite's DDL is transactional), so a crash or an error leaves
the file at the version before, never half-way. The version is read inside
that transaction, so two processes opening one old file at once apply each
migration once. A file whose version is above ``len(MIGRATIONS)`` raises
:class:`~skiff.store.errors.SchemaTooNew` and is left as it was.

Why the UNIQUE constraints: two API requests may race to create the same
resource group, the same container group or claim the same DNS label; the
database, not a check in Python, decides which one wins. Names are compared
through their ``*_key`` columns (see :func:`skiff.store.records.name_key`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence

from skiff.store.errors import SchemaTooNew, StoreError
from skiff.store.records import subscription_key

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    version INTEGER NOT NULL
)"""

# Version 1: resource groups, container groups, operations and tokens.
_V1 = """
CREATE TABLE resource_groups (
    subscription TEXT NOT NULL,
    name_key     TEXT NOT NULL,     -- name_key(name): what names compare by
    name         TEXT NOT NULL,     -- as first created: the display case
    location     TEXT NOT NULL,
    tags         TEXT NOT NULL,     -- JSON object
    created_at   REAL NOT NULL,
    -- 1 once DELETE was accepted: hidden from reads, and the row goes with its
    -- last container group (the container groups' foreign key needs it until then).
    deleting     INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    PRIMARY KEY (subscription, name_key)
) WITHOUT ROWID;

CREATE TABLE container_groups (
    uid                TEXT PRIMARY KEY,  -- uuid4 hex: the engine's group id
    subscription       TEXT NOT NULL,
    rg_key             TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    resource_group     TEXT NOT NULL,     -- display case, copied from resource_groups.name
    name               TEXT NOT NULL,     -- display case
    location           TEXT NOT NULL,
    body               TEXT NOT NULL,     -- canonical JSON of the ARM body, secrets included
    tags               TEXT NOT NULL,     -- JSON object
    provisioning_state TEXT NOT NULL,
    desired            TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    generation         INTEGER NOT NULL,
    error              TEXT,              -- JSON object, or NULL
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    -- also the index that lists in (rg, name) order and pages by key
    UNIQUE (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
);

CREATE TABLE operations (
    id           TEXT PRIMARY KEY,
    subscription TEXT NOT NULL,
    location     TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    resource_key TEXT NOT NULL,  -- name_key(resource_id): ARM ids compare without case
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('InProgress', 'Succeeded', 'Failed', 'Canceled')),
    error        TEXT,
    started_at   REAL NOT NULL,
    ended_at     REAL,
    generation   INTEGER
);
CREATE INDEX operations_by_resource ON operations (resource_key, status);
CREATE INDEX operations_by_end ON operations (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    subscription  TEXT,                  -- NULL: admin, sees every subscription
    name          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,  -- hex; the secret itself is never stored
    created_at    REAL NOT NULL
);
"""

# Version 2: DNS name labels, one holder each, released with their group.
_V2 = """
CREATE TABLE dns_labels (
    label     TEXT PRIMARY KEY,  -- lower case: DNS names compare without case
    group_uid TEXT NOT NULL REFERENCES container_groups (uid) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX dns_labels_by_group ON dns_labels (group_uid);
"""

# Version 3: virtual networks (their subnets live in the body, as in ARM), and the
# subnet each private container group is placed in (a key: the subnet's ARM id,
# compared without case), which is what makes a subnet "in use".
_V3 = """
CREATE TABLE virtual_networks (
    subscription   TEXT NOT NULL,
    rg_key         TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case, copied from resource_groups.name
    name           TEXT NOT NULL,     -- display case
    location       TEXT NOT NULL,
    body           TEXT NOT NULL,     -- canonical JSON: {"properties": {...}}
    tags           TEXT NOT NULL,     -- JSON object
    guid           TEXT NOT NULL,     -- resourceGuid
    created_at     REAL NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
) WITHOUT ROWID;

ALTER TABLE container_groups ADD COLUMN subnet_key TEXT;

CREATE INDEX container_groups_by_subnet ON container_groups (subnet_key)
    WHERE subnet_key IS NOT NULL;
"""

# Version 4: virtual networks deleted from the store whose removal from the node is
# pending. A row is written in the transaction that deletes the network (alone or with
# its resource group) and cleared by the reconcile loop once the engine removed it, so
# that a crash between the two leaks no bridge: the next start finishes the removal.
_V4 = """
CREATE TABLE vnet_teardowns (
    vnet_key    TEXT PRIMARY KEY,  -- the network's ARM id, lower case: the engine's key
    recorded_at REAL NOT NULL
) WITHOUT ROWID;
"""

# Version 5: subscription ids stored as their key (skiff.store.records.subscription_key),
# as every other name already was: ARM compares them without case, and a store that kept
# them as written held "ACME" and "acme" as two subscriptions. The foreign keys from
# container groups and virtual networks to their resource group are checked at the
# commit, once both sides have the new key. Two subscriptions that differ only in case
# and hold a resource, resource group or network of the same name cannot be merged:
# the migration then fails on the UNIQUE constraint and leaves the file at version 4.
_V5 = """
PRAGMA defer_foreign_keys = ON;
UPDATE resource_groups SET subscription = skiff_key(subscription)
    WHERE subscription != skiff_key(subscription);
UPDATE container_groups SET subscription = skiff_key(subscription)
    WHERE subscription != skiff_key(subscription);
UPDATE virtual_networks SET subscription = skiff_key(subscription)
    WHERE subscription != skiff_key(subscription);
UPDATE operations SET subscription = skiff_key(subscription)
    WHERE subscription != skiff_key(subscription);
"""

# Version 6: secrets at rest sealed with the node key (skiff.store.sealing): every
# secret of every stored body (skiff.store.bodysecrets) is sealed in place, and a probe
# sealed with the key tells a wrong or missing key at the next start. The probe is
# written by the store once the key is known; the bodies by ``skiff_seal_body``, which
# the store gives the migration (without a key it refuses to run on any row). The
# plaintext the old rows leave in freed pages and in the WAL is wiped after the
# migration (see skiff.store.database).
_V6 = """
CREATE TABLE sealing (
    id    INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    probe TEXT NOT NULL                        -- PROBE, sealed with the node key
);
UPDATE container_groups SET body = skiff_seal_body(uid, body);
"""

# Version 7: storage accounts (Microsoft.Storage) and their file shares (Azure Files), and
# which container groups mount which share. Account names are unique on the node (as in
# Azure, where they are global): the share's node-wide name is (account, share). The two
# keys are sealed with the node key (skiff.store.sealing), bound to the account's name.
# ``share_mounts`` is kept with the group's row (written by put_group from the body's
# volumes[].azureFile, gone with the row); existing rows are read from the bodies here
# (names are never sealed, only the key).
_V7 = """
CREATE TABLE storage_accounts (
    name           TEXT PRIMARY KEY,  -- lower case (Azure's names are): unique on the node
    subscription   TEXT NOT NULL,
    rg_key         TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case, copied from resource_groups.name
    location       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    sku            TEXT NOT NULL,     -- JSON object, as given
    tags           TEXT NOT NULL,     -- JSON object
    key1           TEXT NOT NULL,     -- sealed
    key2           TEXT NOT NULL,     -- sealed
    created_at     REAL NOT NULL,
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
) WITHOUT ROWID;
CREATE INDEX storage_accounts_by_rg ON storage_accounts (subscription, rg_key);

CREATE TABLE file_shares (
    account       TEXT NOT NULL REFERENCES storage_accounts (name) ON DELETE CASCADE,
    name          TEXT NOT NULL,  -- lower case
    quota_gib     INTEGER NOT NULL,
    metadata      TEXT NOT NULL,  -- JSON object
    etag          TEXT NOT NULL,
    last_modified REAL NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;

CREATE TABLE share_mounts (
    group_uid TEXT NOT NULL REFERENCES container_groups (uid) ON DELETE CASCADE,
    account   TEXT NOT NULL,  -- lower case
    share     TEXT NOT NULL,  -- lower case
    PRIMARY KEY (group_uid, account, share)
) WITHOUT ROWID;
CREATE INDEX share_mounts_by_share ON share_mounts (account, share);

INSERT OR IGNORE INTO share_mounts (group_uid, account, share)
    SELECT g.uid, lower(json_extract(v.value, '$.azureFile.storageAccountName')),
           lower(json_extract(v.value, '$.azureFile.shareName'))
    FROM container_groups AS g, json_each(g.body, '$.properties.volumes') AS v
    WHERE json_type(v.value, '$.azureFile.storageAccountName') = 'text'
      AND json_type(v.value, '$.azureFile.shareName') = 'text';
"""

# Version 8: sign-in and access. The node's tenant (one per node, a random GUID made
# here, once: every token skiff issues names it as ``tid``); service principals, each with
# its secrets (only a SHA-256 of each: they are 256 random bits, see skiff.store.tokens)
# and role assignments (Microsoft.Authorization): a principal's role at a scope, an ARM
# id compared without case (``scope_key``). A principal's assignments go with it.
_V8 = """
CREATE TABLE node_identity (
    id        INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    tenant_id TEXT NOT NULL
);
INSERT INTO node_identity (id, tenant_id) SELECT 1,
    lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
          substr(hex(randomblob(2)), 2) || '-' ||
          substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' ||
          hex(randomblob(6)));

CREATE TABLE service_principals (
    object_id    TEXT PRIMARY KEY,     -- a GUID: the principal's id in role assignments
    app_id       TEXT NOT NULL UNIQUE, -- a GUID: the client id it signs in with
    display_name TEXT NOT NULL,
    created_at   REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE principal_secrets (
    key_id        TEXT PRIMARY KEY,     -- a GUID
    object_id     TEXT NOT NULL REFERENCES service_principals (object_id) ON DELETE CASCADE,
    secret_sha256 TEXT NOT NULL UNIQUE, -- hex; the secret itself is never stored
    hint          TEXT NOT NULL,        -- its first three characters, as Entra shows
    end_at        REAL NOT NULL,
    created_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX principal_secrets_by_principal ON principal_secrets (object_id);

CREATE TABLE role_assignments (
    name           TEXT PRIMARY KEY,  -- a GUID, lower case
    scope          TEXT NOT NULL,     -- the ARM id, as first written
    scope_key      TEXT NOT NULL,     -- lower case, no trailing slash ('' for the root)
    role_id        TEXT NOT NULL,     -- the role definition's GUID
    principal_id   TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    created_at     REAL NOT NULL,
    UNIQUE (scope_key, role_id, principal_id)
) WITHOUT ROWID;
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id);
"""

#: Every migration, oldest first; the schema's version is how many were applied.
# Version 9: user-assigned managed identities (Microsoft.ManagedIdentity), a resource of
# a resource group like any other. Their principal and client ids are made at creation
# and never change; the tenant is the node's (version 8's node_identity).
_V9 = """
CREATE TABLE user_assigned_identities (
    subscription   TEXT NOT NULL,
    rg_key         TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case, copied from resource_groups.name
    name           TEXT NOT NULL,     -- display case
    location       TEXT NOT NULL,
    tags           TEXT NOT NULL,     -- JSON object
    tenant_id      TEXT NOT NULL,
    principal_id   TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL UNIQUE,
    created_at     REAL NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
) WITHOUT ROWID;
"""

# Version 10: admission without reading bodies. Each container group keeps what it asks
# for (the sum of its containers' CPU and memory requests) in columns, whether its
# current generation has ended (stopped, succeeded, failed: it holds no capacity), and
# the last generation the reconcile loop finished deploying (``settled``), so
# that the node's capacity and a subscription's quota are summed by SQLite inside the
# transaction that admits a group. quota_events keeps the creates and deletes of the
# last hour, for the per-5-minute and per-hour quotas.
_V10 = """
ALTER TABLE container_groups ADD COLUMN cpu REAL NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN memory_gb REAL NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
UPDATE container_groups SET settled = generation
    WHERE provisioning_state IN ('Succeeded', 'Failed');
UPDATE container_groups SET
    cpu = (SELECT coalesce(sum(json_extract(c.value, '$.properties.resources.requests.cpu')), 0)
           FROM json_each(container_groups.body, '$.properties.containers') AS c),
    memory_gb = (SELECT coalesce(sum(json_extract(c.value,
                                                  '$.properties.resources.requests.memoryInGB')), 0)
                 FROM json_each(container_groups.body, '$.properties.containers') AS c);
-- Admission's sums read these indexes alone (a row's body, before these columns, may
-- span overflow pages): the node's holding groups, and a subscription's.
CREATE INDEX container_groups_holding ON container_groups (desired, released, cpu, memory_gb,
                                                           uid);
CREATE INDEX container_groups_by_subscription ON container_groups (subscription, desired,
                                                                   released, cpu, uid);
CREATE TABLE quota_events (
    subscription TEXT NOT NULL,
    kind         TEXT NOT NULL,       -- 'create' or 'delete'
    at           REAL NOT NULL
);
CREATE INDEX quota_events_by_subscription ON quota_events (subscription, kind, at);
"""

# Version 11: usage, metered as ACI bills it (skiff.control.metering): one row per span of
# time a group was billable, from the start of its deployment (or start) to its stop, end
# or deletion, with the group's requests (summed over its containers) copied in: the row
# outlives the group and its resource group, and a cost answers for what ran, as Azure's.
# ``last_seen`` is advanced by the meter while the span is open (NULL ``ended_at``): where a
# crash leaves a span of a group that did not survive it, the span ends there.
_V11 = """
CREATE TABLE usage_spans (
    id             INTEGER PRIMARY KEY,
    group_uid      TEXT NOT NULL,
    subscription   TEXT NOT NULL,     -- its key (lower case)
    rg_key         TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case, as when the span began
    name           TEXT NOT NULL,     -- the group's, display case
    location       TEXT NOT NULL,
    cpu            REAL NOT NULL,     -- vCPUs requested
    memory_gb      REAL NOT NULL,     -- GB requested
    gpu            INTEGER NOT NULL,  -- GPUs requested
    started_at     REAL NOT NULL,
    last_seen      REAL NOT NULL,
    ended_at       REAL,              -- NULL: still billed
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX usage_spans_open ON usage_spans (group_uid) WHERE ended_at IS NULL;
CREATE INDEX usage_spans_by_rg ON usage_spans (subscription, rg_key, started_at);
"""

# Version 12 (after 9 here; quotas are 10, usage 11): the activity log
# (skiff.store.activity): one row per event, its EventData as JSON beside the keys a
# query filters on. Rows go after 90 days, and beyond a cap per subscription (the
# tenant's sign-ins are subscription ''). ``lro_id``: the operation an Accepted write
# started, whose end adds the event that tells how it ended.
_V12 = """
CREATE TABLE activity_log (
    seq            INTEGER PRIMARY KEY,  -- the order events were recorded
    subscription   TEXT NOT NULL,        -- subscription_key(); '' for the tenant's
    at             REAL NOT NULL,        -- eventTimestamp
    rg_key         TEXT NOT NULL,        -- name_key(resourceGroupName), '' for none
    resource_key   TEXT NOT NULL,        -- name_key(resourceId)
    provider_key   TEXT NOT NULL,        -- lower case
    correlation_id TEXT NOT NULL,        -- lower case
    caller_key     TEXT NOT NULL,        -- lower case
    status_key     TEXT NOT NULL,        -- lower case: started, accepted, succeeded...
    lro_id         TEXT,
    event          TEXT NOT NULL         -- the EventData, JSON
);
CREATE INDEX activity_by_subscription ON activity_log (subscription, at, seq);
CREATE INDEX activity_by_time ON activity_log (at);
CREATE INDEX activity_by_operation ON activity_log (lro_id) WHERE lro_id IS NOT NULL;
"""

# Container group profiles (skiff.store.profiles): a profile's row holds its name, tags
# and current revision; each revision's definition is a row of its own, never changed
# once written (a group made from revision n is made from what n was). A revision's body
# is sealed as a group's is, under the context "<profile uid>@<revision>".
_PROFILES = """
CREATE TABLE container_group_profiles (
    uid            TEXT PRIMARY KEY,  -- uuid4 hex
    subscription   TEXT NOT NULL,
    rg_key         TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case
    name           TEXT NOT NULL,     -- display case
    location       TEXT NOT NULL,
    tags           TEXT NOT NULL,     -- JSON object
    revision       INTEGER NOT NULL,  -- the current one
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    UNIQUE (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
);
CREATE TABLE container_group_profile_revisions (
    profile_uid TEXT NOT NULL REFERENCES container_group_profiles (uid) ON DELETE CASCADE,
    revision    INTEGER NOT NULL CHECK (revision >= 1),
    body        TEXT NOT NULL,  -- canonical JSON: location, zones, properties; sealed
    created_at  REAL NOT NULL,
    PRIMARY KEY (profile_uid, revision)
) WITHOUT ROWID;
"""

# Spot groups (skiff.store.admission): whether a group is ``priority: Spot`` (a column, so
# that admission sums Spot and Regular cores apart without reading a body), and its
# evictions: ``evicted`` 0 (not evicted), 1 (evicted: its containers are to be stopped),
# 2 (stopped, waiting for spare capacity to run again); when it was last evicted and how
# many times; when its current run was admitted (Spot groups are evicted newest first).
# The holding indexes gain ``spot``, so that admission's sums still read an index alone.
_SPOT = """
ALTER TABLE container_groups ADD COLUMN spot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN evicted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN evicted_at REAL;
ALTER TABLE container_groups ADD COLUMN evictions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE container_groups ADD COLUMN admitted_at REAL NOT NULL DEFAULT 0;
UPDATE container_groups SET admitted_at = updated_at;
UPDATE container_groups SET spot = 1
    WHERE lower(coalesce(json_extract(body, '$.properties.priority'), '')) = 'spot';
DROP INDEX container_groups_holding;
DROP INDEX container_groups_by_subscription;
CREATE INDEX container_groups_holding ON container_groups (desired, released, spot, cpu,
                                                           memory_gb, uid);
CREATE INDEX container_groups_by_subscription ON container_groups (subscription, desired,
                                                                   released, spot, cpu, uid);
CREATE INDEX container_groups_evicted ON container_groups (evicted, evicted_at)
    WHERE evicted != 0;
"""

# NGroups (skiff.store.ngroups): an NGroup's body and the controller's state between
# rounds (``rollout``, ``events``), so that a rolling update resumes after a restart; and
# which container groups are its members, built from which of its generations.
_NGROUPS = """
CREATE TABLE ngroups (
    uid                TEXT PRIMARY KEY,
    subscription       TEXT NOT NULL,
    rg_key             TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    resource_group     TEXT NOT NULL,
    name               TEXT NOT NULL,
    location           TEXT NOT NULL,
    body               TEXT NOT NULL,     -- JSON, as the PUT gave it (less read-only fields)
    tags               TEXT NOT NULL,
    provisioning_state TEXT NOT NULL,
    desired            TEXT NOT NULL CHECK (desired IN ('running', 'stopped', 'deleted')),
    version            INTEGER NOT NULL,  -- bumped by every new body
    generation         INTEGER NOT NULL,  -- bumped by a new body for the members
    rollout            TEXT NOT NULL,     -- JSON: the controller's state between rounds
    events             TEXT NOT NULL,     -- JSON: the newest events
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    UNIQUE (subscription, rg_key, name_key)
);
CREATE TABLE ngroup_members (
    ngroup_uid TEXT NOT NULL REFERENCES ngroups (uid),
    name_key   TEXT NOT NULL,  -- the member container group, in the NGroup's resource group
    name       TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (ngroup_uid, name_key)
) WITHOUT ROWID;
"""


# Standby pools (skiff.store.standby): the pools, and the key of the pool that owns a
# container group still waiting in it (NULL: a tenant's group). A pool's members are
# rows of container_groups, so admission, quotas and the meter count them; a claimed one
# keeps the name its engine knows it by in host_name.
_STANDBY = """
CREATE TABLE standby_pools (
    subscription   TEXT NOT NULL,
    rg_key         TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    resource_group TEXT NOT NULL,     -- display case
    name           TEXT NOT NULL,     -- display case
    location       TEXT NOT NULL,
    tags           TEXT NOT NULL,     -- JSON object
    properties     TEXT NOT NULL,     -- JSON object: elasticityProfile, containerGroupProperties
    created_at     REAL NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
) WITHOUT ROWID;
ALTER TABLE container_groups ADD COLUMN pool_key TEXT;
-- The engine's name of a group claimed from a pool: its member's (NULL: the group's name).
ALTER TABLE container_groups ADD COLUMN host_name TEXT;
CREATE INDEX container_groups_by_pool ON container_groups (pool_key, desired,
                                                           provisioning_state, created_at)
    WHERE pool_key IS NOT NULL;
"""

# NGroups' secrets at rest (skiff.store.bodysecrets.ngroup_slots): the per-member
# fields of each body (volumes' account keys, secret files) sealed in place by
# ``skiff_seal_ngroup``, as version 6 sealed the groups'; the store wipes the plaintext
# the old rows leave in free pages and the WAL (skiff.store.database).
_SEAL16 = """
UPDATE ngroups SET body = skiff_seal_ngroup(uid, body);
"""

# Spot usage (skiff.control.pricing): whether a usage span's group ran as Spot, priced
# at ACI's Spot prices. Spans written before are Regular unless their group, still
# stored, is a Spot group (a group's priority does not change).
_SPOTUSAGE16 = """
ALTER TABLE usage_spans ADD COLUMN spot INTEGER NOT NULL DEFAULT 0;
UPDATE usage_spans SET spot = 1
    WHERE group_uid IN (SELECT uid FROM container_groups WHERE spot = 1);
"""

# A standby pool's member is claimable once it serves (skiff.control.standby): its
# declared ports answer, not merely its containers started. Members of an older file
# are not ready until the refill loop has seen them serve (at its first round).
_POOLREADY16 = """
ALTER TABLE container_groups ADD COLUMN pool_ready INTEGER NOT NULL DEFAULT 0;
"""

# GPUs (skiff.store.admission): the NVIDIA GPUs a group's containers ask for, by SKU
# (canonical names, a JSON object such as {"H100": 2}), summed per SKU by admission in the
# transaction that admits a group, as its cores are. Groups stored before asked for none
# (the API refused GPUs).
_GPUS = """
ALTER TABLE container_groups ADD COLUMN gpus TEXT NOT NULL DEFAULT '{}';
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12,
                               _PROFILES, _SPOT, _NGROUPS, _STANDBY, _SEAL16, _SPOTUSAGE16,
                               _POOLREADY16, _GPUS)
#: The version this code writes.
LATEST = len(MIGRATIONS)
#: The version from which the store's secrets are sealed.
SEALED = 6
#: The versions that seal secrets an older file held in clear (its free pages and WAL
#: are wiped once a start migrated past one of them).
SEALING = (SEALED, MIGRATIONS.index(_SEAL16) + 1)


def statements(script: str) -> Iterator[str]:
    """The statements of ``script``, one by one (``executescript`` would commit first).

    Cut at semicolons that SQLite itself takes as the end of a statement, so a
    semicolon in a comment, a string or a trigger's body does not cut.
    """
    *pieces, rest = script.split(";")
    text = ""
    for piece in pieces:
        text += piece + ";"
        if sqlite3.complete_statement(text):
            if _has_code(text):
                yield text.strip()
            text = ""
    if _has_code(text + rest):
        raise ValueError(f"unterminated SQL statement: {(text + rest).strip()[:80]!r}")


def _no_key(uid: str, body: str) -> str:
    raise StoreError("sealing a stored body needs the node key")


def _has_code(text: str) -> bool:
    lines = (line.split("--", 1)[0] for line in text.splitlines())
    return any(line.strip(" \t;") for line in lines)


def version(conn: sqlite3.Connection) -> int:
    """The schema version of the file behind ``conn``: 0 for a new, empty file."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if known is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, *, source: str,
            migrations: Sequence[str] = MIGRATIONS,
            seal_body: Callable[[str, str], str] | None = None,
            seal_ngroup: Callable[[str, str], str] | None = None) -> int:
    """Bring the file behind ``conn`` (in autocommit mode) to ``len(migrations)``.

    Returns the version reached. ``source`` names the file in messages.
    ``seal_body(uid, body JSON)`` seals a stored body's secrets (version 6); without
    it, a migration that has a body to seal fails; ``seal_ngroup`` the same for an
    NGroup's body.
    """
    latest = len(migrations)
    # Migrations compute keys as the code does (Python's lower() folds every letter,
    # SQLite's only ASCII).
    conn.create_function("skiff_key", 1, subscription_key, deterministic=True)
    conn.create_function("skiff_seal_body", 2, seal_body or _no_key)
    conn.create_function("skiff_seal_ngroup", 2, seal_ngroup or _no_key)
    step = latest  # the version being migrated to, for messages
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_VERSION_TABLE)
                found = version(conn)
                if found > latest:
                    raise SchemaTooNew(source, found, latest)
                if found == latest:
                    conn.execute("COMMIT")
                    return found
                step = found + 1
                for statement in statements(migrations[found]):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                    (found + 1,),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot bring the store {source} to schema version "
                             f"{step}: {exc}") from exc
