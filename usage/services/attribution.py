"""Attribution of fetched organisation usage to the owner's stored keys.

An admin key's usage names the provider's API key ids (OpenAI ``key_…``, Anthropic
``apikey_…``). When one of them is a key the owner also stored in the vault, its usage
belongs to that stored key (and its Kay project). The provider lists its keys with a
redacted value (OpenAI's ``redacted_value`` ``sk-abc...def``, Anthropic's
``partial_key_hint`` ``sk-ant-api03-R2D...igAA``); each is matched against the plaintext
of the owner's stored keys of the same provider, and a match is kept as an
:class:`ExternalKeyLink`, so a key is opened once, not on every fetch.

What happens later:

* A linked key moved to another project: buckets keep the project they were stored
  with (a closed month's spend per project does not change after the fact); buckets
  fetched again (the 48 h re-read) and new ones follow the key to its new project.
* A linked key deleted: its link goes with it (cascade) and its buckets lose the key
  (older ones keep their project; re-read and new ones have none); the next fetch tries
  to match the provider's id again (nothing fits, unless the same secret was stored
  again: then all its usage, old buckets included, moves to the new stored key).
* Two stored keys that fit one redacted value (the same secret stored twice, or two
  secrets alike at both ends): the usage is attributed to neither.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import NamedTuple

from django.core.cache import cache
from django.db import transaction
from django.db.models import CharField, DateTimeField, Value
from django.db.models.functions import TruncDate
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from keys.models import ApiKey, KeyAuditEvent
from keys.services import Origin, audit
from keys.services.common import UnreadableKey, open_key
from usage.models import ExternalKeyLink, Source, UsageBucket
from usage.providers.anthropic import anthropic_api_keys
from usage.providers.openai import match_redacted, openai_project_keys, redaction_ends
from usage.records import BucketRow
from usage.services.rollup import owner_lock, rollup_rewrite

logger = logging.getLogger(__name__)

SCHEDULE = Origin(KeyAuditEvent.Source.SCHEDULE)
# Ids checked without a unique match are not checked again while the owner's stored keys
# of the provider stay the same; after this many seconds they are, in case the listing
# was incomplete (a key created between the usage and the listing).
UNMATCHED_TTL = 24 * 3600

# provider → (admin key plaintext → [(provider's key id, redacted value)])
Lister = Callable[[str], list[tuple[str, str]]]


@sensitive_variables("secret")
def _openai_keys(secret: str) -> list[tuple[str, str]]:
    return [(key.key_id, key.redacted_value) for key in openai_project_keys(admin_key=secret)]


@sensitive_variables("secret")
def _anthropic_keys(secret: str) -> list[tuple[str, str]]:
    return [(key.id, key.partial_key_hint) for key in anthropic_api_keys(admin_key=secret)]


# Providers whose organisation usage names API keys the admin key can list. (OpenRouter's
# rows name the stored key they come from already.)
LISTERS: dict[str, Lister] = {"openai": _openai_keys, "anthropic": _anthropic_keys}


@sensitive_variables("secret")
def usage_rows_attributed(
    *, admin_key: ApiKey, secret: str, rows: Sequence[BucketRow]
) -> list[BucketRow]:
    """``rows`` (fetched with ``admin_key``, whose plaintext is ``secret``) with
    ``api_key_id`` set wherever the provider's key id is one of the owner's stored keys.

    Ids already linked cost one query. Ids not linked yet are matched once: the provider's
    key listing is read and the plausible stored keys are opened (audited); new links
    also move the owner's stored buckets of those ids to the key, with their rollup, in
    one transaction. Best effort: when matching fails (provider down, key unreadable) the
    rows keep the links already known and the fetch goes on."""
    provider = admin_key.provider
    ids = {r.external_key_id for r in rows if r.external_key_id}
    if not ids or provider not in LISTERS or admin_key.kind != ApiKey.Kind.ADMIN:
        return list(rows)
    owner = admin_key.owner
    links, candidates = _links_and_candidates(owner=owner, provider=provider, ids=ids)
    unlinked = ids - set(links)
    if unlinked and candidates:  # (no candidate: nothing to match)
        try:
            links.update(
                _link(
                    owner=owner,
                    provider=provider,
                    secret=secret,
                    ids=unlinked,
                    candidates=candidates,
                )
            )
        except Exception as exc:  # attribution must never fail the fetch it belongs to
            # The class only: a message could quote the provider's answer.
            logger.warning(
                "usage attribution for admin key %s failed: %s", admin_key.pk, type(exc).__name__
            )
    return [
        replace(row, api_key_id=links[row.external_key_id]) if row.external_key_id in links else row
        for row in rows
    ]


class Candidate(NamedTuple):
    """A stored key a provider key id may be (its secret is not read)."""

    pk: int
    updated_at: datetime
    masked_key: str


def _links_and_candidates(
    *, owner: User, provider: str, ids: set[str]
) -> tuple[dict[str, int], list[Candidate]]:
    """The links of ``ids`` (id → stored key), and the owner's stored keys a provider key
    id may be: their LLM keys of ``provider`` (admin keys make no usage of their own).
    One query (a UNION): a fetch whose ids are all linked or known unmatched costs no
    other."""
    keys = (
        ApiKey.objects.filter(owner=owner, provider=provider)
        .exclude(kind=ApiKey.Kind.ADMIN)
        .values_list(Value("", output_field=CharField()), "pk", "updated_at", "masked_key")
        .order_by()
    )
    linked = (
        ExternalKeyLink.objects.filter(owner=owner, provider=provider, external_key_id__in=ids)
        .values_list(
            "external_key_id",
            "api_key_id",
            Value(None, output_field=DateTimeField()),
            Value("", output_field=CharField()),
        )
        .order_by()
    )
    links: dict[str, int] = {}
    candidates = []
    for external_key_id, pk, updated_at, masked_key in keys.union(linked, all=True):
        if external_key_id:  # a link (provider ids are never empty)
            links[external_key_id] = pk
        else:
            candidates.append(Candidate(pk, updated_at, masked_key))
    return links, sorted(candidates)


def _cache_key(owner: User, provider: str) -> str:
    return f"usage:attribution:unmatched:{owner.pk}:{provider}"


def _fingerprint(candidates: Sequence[Candidate]) -> str:
    """Changes whenever a candidate is added, removed or rotated (``updated_at``)."""
    text = ",".join(f"{k.pk}@{k.updated_at.isoformat()}" for k in candidates)
    return hashlib.sha256(text.encode()).hexdigest()


def _mask_fits(mask: str, redacted: str) -> bool:
    """Whether a stored key's mask (its first and last few characters) agrees with a
    redacted value: if not, the key cannot match and is not opened. The match itself
    is always against the plaintext. A redacted value no key can match (nothing hidden,
    too little of the end shown) opens none."""
    ends = redaction_ends(redacted)
    if ends is None:
        return False  # match_redacted refuses it whatever the plaintext
    shown, hidden = mask.split("…", 1) if "…" in mask else ("", "")
    if not shown:
        return True  # nothing to compare: let the plaintext decide
    prefix, suffix = ends
    head = min(len(shown), len(prefix))
    tail = min(len(hidden), len(suffix))
    return shown[:head] == prefix[:head] and (tail == 0 or hidden[-tail:] == suffix[-tail:])


@sensitive_variables("secret", "secrets")
def _link(
    *, owner: User, provider: str, secret: str, ids: set[str], candidates: Sequence[Candidate]
) -> dict[str, int]:
    """Match the provider's ``ids`` not linked yet against ``candidates``; store and apply
    the new links."""
    fingerprint = _fingerprint(candidates)
    checked = cache.get(_cache_key(owner, provider)) or {}
    earlier = (
        set(checked.get("unmatched", ())) if checked.get("fingerprint") == fingerprint else set()
    )
    ids = ids - earlier
    if not ids:
        return {}
    listed = {key_id: redacted for key_id, redacted in LISTERS[provider](secret) if key_id in ids}
    plausible = {
        k.pk
        for k in candidates
        for redacted in listed.values()
        if _mask_fits(k.masked_key, redacted)
    }
    secrets: dict[int, str] = {}
    for api_key in ApiKey.objects.filter(pk__in=plausible).order_by("pk"):
        try:
            secrets[api_key.pk] = open_key(api_key)
        except UnreadableKey:
            continue  # cannot be matched; the others still can (the operator is told)
        audit(
            owner_id=owner.pk,
            action=KeyAuditEvent.Action.USED,
            origin=SCHEDULE,
            api_key=api_key,
            detail={"purpose": "usage_attribution"},
        )
    found: dict[str, int] = {}
    for key_id, redacted in listed.items():
        match = match_redacted(redacted, secrets)
        if match is not None:
            found[key_id] = match
    secrets.clear()
    unmatched = earlier | (ids - set(found))
    cache.set(
        _cache_key(owner, provider),
        {"fingerprint": fingerprint, "unmatched": sorted(unmatched)},
        UNMATCHED_TTL,
    )
    if found:
        found = _store_links(owner=owner, provider=provider, found=found)
    return found


def _store_links(*, owner: User, provider: str, found: dict[str, int]) -> dict[str, int]:
    """Keep the links and attribute the owner's stored buckets of those ids to their
    keys, rewriting the affected rollup rows: one transaction under the owner's lock.
    Returns the links as stored (a concurrent fetch of the same organisation may have
    stored them first)."""
    with transaction.atomic():
        owner_lock(owner.pk)
        ExternalKeyLink.objects.bulk_create(
            [
                ExternalKeyLink(owner=owner, provider=provider, external_key_id=ext, api_key_id=pk)
                for ext, pk in found.items()
            ],
            ignore_conflicts=True,
        )
        stored = dict(
            ExternalKeyLink.objects.filter(
                owner=owner, provider=provider, external_key_id__in=found
            ).values_list("external_key_id", "api_key_id")
        )
        projects = dict(ApiKey.objects.filter(pk__in=stored.values()).values_list("pk", "project"))
        touched: dict[str, set[tuple[date, str]]] = defaultdict(set)
        for ext, pk in stored.items():
            buckets = UsageBucket.objects.filter(
                owner=owner, provider=provider, external_key_id=ext
            ).exclude(source=Source.KAY_METERED)
            spans = buckets.annotate(day=TruncDate("bucket_start", tzinfo=UTC)).values_list(
                "source", "day", "model"
            )
            for source, day, model in spans.distinct().order_by():
                touched[source].add((day, model))
            buckets.update(api_key_id=pk, project_id=projects.get(pk))
        for source, pairs in touched.items():
            rollup_rewrite(
                owner_id=owner.pk,
                source=source,
                days={day for day, _ in pairs},
                pairs={(provider, model) for _, model in pairs},
            )
    return stored
