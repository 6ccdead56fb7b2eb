"""Container group profiles (``Microsoft.ContainerInstance/containerGroupProfiles``): the
ARM body of one, checked, and its answer.

A profile is a container group's definition kept under a name of its own, to make
groups from (api-version 2024-05-01-preview on). Its ``properties`` are a group's,
checked by every rule a group's are (:func:`skiff.models.parse.parse_group_definition`),
and two that only a profile has:

- ``shutdownGracePeriod``: how long a container of a group made from the profile has
  between SIGTERM and SIGKILL when it is stopped;
- ``timeToLive``: how long a group made from the profile lives once its containers have
  all ended (ACI's "post completion time to live"); then it is deleted.

ACI's REST specification types both as RFC 3339 date-times, and its SDKs send one
(azure-mgmt-containerinstance 10.2.0b2 types both ``datetime``); its text calls them a
period and a time to live. skiff takes both forms, as ACI takes the date-times:

- an ISO 8601 duration (``PT30S``, ``PT1H``, ``P1D``): the grace, the time to live;
- a date-time: for ``timeToLive``, the moment the group is deleted, whatever it does
  then; for ``shutdownGracePeriod``, kept and answered as sent, the groups stopping with
  the node's grace (a moment is no length, and ACI documents no reading of one).

Either is answered back as it was sent. Anything else is a 400
(``InvalidShutdownGracePeriod``, ``InvalidTimeToLive``).

A profile answers its current ``revision`` and every revision it has had
(``registeredRevisions``, read-only); both are the store's, never the client's: a body
that sends them has them ignored, as ARM ignores read-only properties.

Error codes (skiff's names, in its style; ACI's are not documented):

- ``InvalidContainerGroupProfileName``: the name is not 1-63 letters, digits, '-' and '_',
  starting and ending with a letter or digit (the specification's pattern).
- ``InvalidContainerGroupProfile``: the profile's properties refer to a profile or a
  standby pool (a group made from a profile names them; a profile cannot).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skiff.errors import ArmError
from skiff.models.body import ContainerGroupBody
from skiff.models.parse import parse_group_definition
from skiff.models.regions import Locations
from skiff.models.render import render_container_group

RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroupProfiles"
#: The first api-version that has container group profiles.
PROFILES_SINCE = "2024-05-01"
#: The properties only a profile has (a group made from one carries them, never answers them).
PROFILE_ONLY = ("shutdownGracePeriod", "timeToLive")
#: The properties a profile answers and never takes.
_READ_ONLY = ("revision", "registeredRevisions", "provisioningState", "instanceView")
#: What a group made from a profile names; a profile itself names neither.
_REFERENCES = ("containerGroupProfile", "standbyPoolProfile")
_NAME = re.compile(r"[a-zA-Z0-9]|[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]")
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                       re.IGNORECASE | re.ASCII)
#: The longest grace a container may have (ACI gives none above a few minutes; an hour
#: keeps a stop from holding the node's teardown lane forever).
MAX_GRACE_S = 3600.0
#: The longest time to live (a year): past it, a group is as good as kept.
MAX_TTL_S = 366 * 86400.0


#: The previews before it that had them too (in an earlier shape, answered as today's).
EARLY_PREVIEWS = ("2023-02-01-preview", "2023-05-15-preview")
#: The versions the specification publishes with profiles, for ARM's refusal of others.
PUBLISHED = (*EARLY_PREVIEWS, "2024-05-01-preview", "2024-09-01-preview",
             "2024-10-01-preview", "2024-11-01-preview", "2025-09-01")


def has_profiles(api_version: str | None) -> bool:
    """Whether ``api_version`` knows container group profiles."""
    return api_version is not None and (api_version[:10] >= PROFILES_SINCE
                                        or api_version.lower() in EARLY_PREVIEWS)


def check_profile_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ArmError(400, "InvalidContainerGroupProfileName",
                       f"The container group profile name '{name[:80]}' is invalid: it must be "
                       "1 to 63 letters, digits, '-' and '_', starting and ending with a "
                       "letter or digit.")


def duration_seconds(text: str) -> float | None:
    """Seconds of an ISO 8601 duration (``PT30S``, ``P1DT2H``, ``P2W``); None if ``text``
    is not one."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or not any(found.groups()) or text.strip().upper().endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def moment(text: str) -> float | None:
    """The POSIX time of an RFC 3339 date-time (``2026-01-02T03:04:05Z``); None if ``text``
    is not one (a date-time without an offset is UTC, as ARM reads it)."""
    if not isinstance(text, str) or "T" not in text.upper():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):  # not a date-time, or one no clock reaches
        return None


@dataclass(frozen=True)
class Lifetime:
    """What a profile's ``shutdownGracePeriod`` and ``timeToLive`` say, in seconds."""

    #: Seconds between SIGTERM and SIGKILL; None: the node's default.
    grace_s: float | None = None
    #: Seconds a group lives once its containers have all ended; None: for ever.
    ttl_s: float | None = None
    #: The moment (POSIX time) the group is deleted, whatever it does; None: none.
    expires_at: float | None = None

    @classmethod
    def of(cls, properties: Mapping[str, Any]) -> Lifetime:
        """The lifetime a stored profile's (or group's) properties hold: they were checked
        at PUT (:func:`check_lifetime`), so nothing here raises."""
        grace = properties.get("shutdownGracePeriod")
        ttl = properties.get("timeToLive")
        ttl_s = duration_seconds(ttl) if isinstance(ttl, str) else None
        return cls(grace_s=duration_seconds(grace) if isinstance(grace, str) else None,
                   ttl_s=ttl_s,
                   expires_at=moment(ttl) if isinstance(ttl, str) and ttl_s is None else None)


def check_lifetime(properties: Mapping[str, Any]) -> None:
    """ArmError(400) unless ``shutdownGracePeriod`` and ``timeToLive`` (where present) are
    what skiff takes (see the module's docstring)."""
    grace = properties.get("shutdownGracePeriod")
    if grace is not None:
        seconds = duration_seconds(grace) if isinstance(grace, str) else None
        if (seconds is None or seconds > MAX_GRACE_S) and (
                not isinstance(grace, str) or moment(grace) is None):
            raise ArmError(400, "InvalidShutdownGracePeriod",
                           "shutdownGracePeriod must be an ISO 8601 duration of at most one "
                           "hour, such as 'PT30S', or an RFC 3339 date-time.",
                           target="properties.shutdownGracePeriod")
    ttl = properties.get("timeToLive")
    if ttl is not None:
        seconds = duration_seconds(ttl) if isinstance(ttl, str) else None
        if (seconds is None or seconds > MAX_TTL_S) and (
                not isinstance(ttl, str) or moment(ttl) is None):
            raise ArmError(400, "InvalidTimeToLive",
                           "timeToLive must be an ISO 8601 duration of at most a year, such as "
                           "'PT1H', or an RFC 3339 date-time.", target="properties.timeToLive")


def _named(doc: Mapping[str, Any], name: str) -> list[str]:
    return [k for k in doc if isinstance(k, str) and k.lower() == name.lower()]


@dataclass(frozen=True)
class ProfileBody:
    """A profile's PUT body, checked: what the store keeps as one revision (``stored``:
    location, zones and properties; tags apart, as a group's)."""

    location: str
    tags: dict[str, str]
    stored: dict[str, Any]


def parse_profile_body(body: Any, *, name: str, default_location: str,
                       known_locations: Collection[str] | Locations,
                       allow_privileged: bool = False,
                       api_version: str | None = None) -> ProfileBody:
    """Validate a profile's PUT body: its name, a group's rules, and its own fields."""
    check_profile_name(name)
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    data = dict(body)
    own: dict[str, Any] = {}
    props_keys = _named(data, "properties")
    props = data.get(props_keys[0]) if props_keys else None
    if isinstance(props, dict):
        props = dict(props)
        for field in (*PROFILE_ONLY, *_READ_ONLY, *_REFERENCES):
            for key in _named(props, field):
                value = props.pop(key)
                if field in PROFILE_ONLY and value is not None:
                    own[field] = value
                elif field in _REFERENCES and value is not None:
                    raise ArmError(400, "InvalidContainerGroupProfile",
                                   f"A container group profile cannot name a {field}.",
                                   target=f"properties.{field}")
        data[props_keys[0]] = props
    check_lifetime(own)
    group = parse_group_definition(data, default_location=default_location,
                                   known_locations=known_locations,
                                   allow_privileged=allow_privileged, api_version=api_version)
    stored = group.to_stored()
    tags = stored.pop("tags", None) or {}
    stored["properties"].update(own)
    return ProfileBody(location=group.location, tags=dict(tags), stored=stored)


def group_definition(stored: Mapping[str, Any]) -> ContainerGroupBody:
    """The group definition of a stored profile revision (its own fields aside)."""
    props = {k: v for k, v in stored["properties"].items() if k not in PROFILE_ONLY}
    return ContainerGroupBody.from_stored({**stored, "properties": props})


def render_profile(stored: Mapping[str, Any], *, resource_id: str, name: str,
                   tags: Mapping[str, str], revision: int,
                   revisions: list[int] | None = None) -> dict[str, Any]:
    """A profile revision as ARM answers it: a group's definition, secrets left out as in
    a group's answer (:mod:`skiff.models.render`), with the revision it is and, for the
    profile itself, every revision it has had."""
    out = render_container_group(group_definition(stored), resource_id=resource_id, name=name,
                                 provisioning_state="", view=None, include_instance_view=False)
    out["type"] = RESOURCE_TYPE
    out["tags"] = dict(tags)
    props = out["properties"]
    props.pop("provisioningState", None)
    props.update({k: v for k, v in stored["properties"].items() if k in PROFILE_ONLY})
    props["revision"] = revision
    if revisions is not None:
        props["registeredRevisions"] = revisions
    return out
