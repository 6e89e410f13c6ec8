"""Realistic tenant data for the local stack and the tests: gzip JSON-lines segments in each
tenant's live container, with instances, instance events and data elements shaped like the
platform's documents (seeds/001). Every record carries its tenantId and a timestamp.

The content is a pure function of (seed, tenant, start, interval, sizes), so two runs with the same
arguments write byte-identical blobs; re-seeding uploads only segments whose content changed.

    python -m starters.seed_data --plan plans/local.toml --count 5     # DR_BLOB_ENDPOINT from `drctl dev env`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from activities.azure import AzureClients, AzureConnection
from domain.messages.backups import (
    META_DATA_CLASS,
    META_FROM,
    META_RECORDS,
    META_SHA256,
    META_TENANT,
    META_TO,
    SEGMENTS_PREFIX,
    utc_iso,
)
from domain.plan import BackupSpec, load_plan

APPS = ("skjema-endring-av-navn", "melding-om-flytting", "soknad-tilskudd", "rapport-arsoppgjor")
TASKS = (("Task_1", "Utfylling", "data"), ("Task_2", "Bekreftelse", "confirmation"), ("Task_3", "Signering", "signing"))
EVENT_TYPES = ("Created", "Saved", "Submited", "process_StartTask", "process_EndTask")
DATA_TYPES = (("ServiceModel", "application/xml"), ("ref-data-as-pdf", "application/pdf"), ("vedlegg", "image/png"))


@dataclass(frozen=True)
class SeedSegment:
    """One generated segment: its blob name, gzip bytes and what the backup expects of it."""

    tenant_id: str
    name: str
    data: bytes
    records: int
    time_from: str
    time_to: str
    data_class: str = "hot"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def lines(self) -> list[dict[str, Any]]:
        """The records again, decoded (tests compare restored data with these)."""
        return [json.loads(line) for line in gzip.decompress(self.data).splitlines()]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso7(moment: dt.datetime) -> str:
    """The platform's own timestamp form: seven fractional digits and Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _org(tenant_id: str) -> str:
    return tenant_id.split("-", 1)[-1][:8] or tenant_id


def _instance_records(
    rng: random.Random, tenant_id: str, moment: dt.datetime, window_end: dt.datetime
) -> list[dict[str, Any]]:
    """One instance with its events and data elements, all inside [moment, window_end)."""
    org = _org(tenant_id)
    app = rng.choice(APPS)
    party = str(50000000 + rng.randrange(1_000_000))
    user = 20000000 + rng.randrange(100_000)
    guid = _uuid(rng)
    started = moment
    task_id, task_name, task_type = rng.choice(TASKS)
    room = max(1.0, (window_end - moment).total_seconds() - 1)
    last = started + dt.timedelta(seconds=rng.uniform(1, room))
    instance = {
        "kind": "instance",
        "tenantId": tenant_id,
        "timestamp": _iso7(last),
        "id": guid,
        "instanceOwner": {
            "partyId": party,
            "personNumber": f"{rng.randrange(1, 29):02d}{rng.randrange(1, 13):02d}"
            f"{rng.randrange(40, 99)}{rng.randrange(10000, 99999)}",
        },
        "appId": f"{org}/{app}",
        "org": org,
        "title": {"nb": app},
        "process": {
            "started": _iso7(started),
            "startEvent": "StartEvent_1",
            "currentTask": {
                "flow": 2,
                "started": _iso7(started),
                "elementId": task_id,
                "name": task_name,
                "altinnTaskType": task_type,
            },
        },
        "status": {"isArchived": False, "isSoftDeleted": False},
        "created": _iso7(started),
        "createdBy": str(user),
        "lastChanged": _iso7(last),
        "lastChangedBy": str(user),
    }
    records: list[dict[str, Any]] = [instance]
    for i in range(rng.randint(1, 3)):
        when = started + (last - started) * (i / 3)
        records.append(
            {
                "kind": "instanceEvent",
                "tenantId": tenant_id,
                "timestamp": _iso7(when),
                "id": _uuid(rng),
                "instanceId": f"{party}/{guid}",
                "created": _iso7(when),
                "eventType": EVENT_TYPES[i % len(EVENT_TYPES)],
                "instanceOwnerPartyId": party,
                "user": {"userId": user, "orgId": None, "authenticationLevel": 2, "endUserSystemId": None},
                "processInfo": {
                    "started": _iso7(started),
                    "startEvent": "StartEvent_1",
                    "currentTask": {
                        "flow": 2,
                        "started": _iso7(started),
                        "elementId": task_id,
                        "name": task_name,
                        "altinnTaskType": task_type,
                    },
                },
            }
        )
    for _ in range(rng.randint(1, 2)):
        element = _uuid(rng)
        data_type, content_type = rng.choice(DATA_TYPES)
        records.append(
            {
                "kind": "dataElement",
                "tenantId": tenant_id,
                "timestamp": _iso7(last),
                "id": element,
                "instanceGuid": guid,
                "dataType": data_type,
                "contentType": content_type,
                "blobStoragePath": f"{org}/{app}/{guid}/data/{element}",
                "size": rng.randrange(200, 2_000_000),
                "locked": False,
                "refs": [],
                "created": _iso7(started),
                "lastChanged": _iso7(last),
                "lastChangedBy": str(user),
            }
        )
    return records


def build_segment(
    tenant_id: str,
    index: int,
    *,
    start: dt.datetime,
    interval: dt.timedelta = dt.timedelta(hours=1),
    instances: int = 12,
    seed: int = 0,
) -> SeedSegment:
    """Segment ``index`` of a tenant: ``instances`` instances (with events and data elements) whose
    records fall in [start + index*interval, start + (index+1)*interval), in time order."""
    rng = random.Random(f"{seed}/{tenant_id}/{index}")
    window_start = start.astimezone(dt.UTC) + interval * index
    window_end = window_start + interval
    records: list[dict[str, Any]] = []
    for _ in range(instances):
        moment = window_start + dt.timedelta(seconds=rng.uniform(0, interval.total_seconds() / 2))
        records.extend(_instance_records(rng, tenant_id, moment, window_end))
    records.sort(key=lambda r: (r["timestamp"], r["id"]))
    body = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records).encode()
    stamp = f"{window_start:%Y%m%dT%H%M%SZ}"
    times = [dt.datetime.fromisoformat(r["timestamp"][:26] + "+00:00") for r in records]
    return SeedSegment(
        tenant_id=tenant_id,
        name=f"{SEGMENTS_PREFIX}{stamp}-{index:04d}.jsonl.gz",
        data=gzip.compress(body, mtime=0),
        records=len(records),
        time_from=utc_iso(min(times)),
        time_to=utc_iso(max(times)),
    )


def build_tenant(
    tenant_id: str,
    *,
    segments: int = 4,
    start: dt.datetime,
    interval: dt.timedelta = dt.timedelta(hours=1),
    instances: int = 12,
    seed: int = 0,
) -> list[SeedSegment]:
    return [
        build_segment(tenant_id, i, start=start, interval=interval, instances=instances, seed=seed)
        for i in range(segments)
    ]


async def upload_segments(service: BlobServiceClient, spec: BackupSpec, segments: Sequence[SeedSegment]) -> int:
    """Write the segments into their tenants' live containers; returns how many blobs were written
    (a segment already there with the same SHA-256 is left alone)."""
    written = 0
    for segment in segments:
        container = service.get_container_client(spec.live_container(segment.tenant_id))
        with contextlib.suppress(ResourceExistsError):
            await container.create_container()
        blob = container.get_blob_client(segment.name)
        try:
            current = (await blob.get_blob_properties()).metadata.get(META_SHA256)
        except ResourceNotFoundError:
            current = None
        if current == segment.sha256:
            continue
        await blob.upload_blob(
            segment.data,
            overwrite=True,
            content_settings=ContentSettings(content_type="application/gzip"),
            metadata={
                META_TENANT: segment.tenant_id,
                META_RECORDS: str(segment.records),
                META_FROM: segment.time_from,
                META_TO: segment.time_to,
                META_DATA_CLASS: segment.data_class,
                META_SHA256: segment.sha256,
                "format": "jsonl.gz",
            },
        )
        written += 1
    return written


def default_start(segments: int, interval: dt.timedelta, now: dt.datetime | None = None) -> dt.datetime:
    """Start so the newest segment ends at the last full hour: recent data, inside any retention."""
    hour = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return hour - interval * segments


async def _seed(args: argparse.Namespace) -> tuple[int, int]:
    plan = load_plan(args.plan)
    tenants = args.tenant or [t.id for t in plan.tenants[: args.count]]
    interval = dt.timedelta(minutes=args.interval_minutes)
    start = dt.datetime.fromisoformat(args.start) if args.start else default_start(args.segments, interval)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    segments = [
        s
        for tenant in tenants
        for s in build_tenant(
            plan.tenant(tenant).id,
            segments=args.segments,
            start=start,
            interval=interval,
            instances=args.instances,
            seed=args.seed,
        )
    ]
    clients = AzureClients(plan, AzureConnection.from_env())
    try:
        written = await upload_segments(clients.blob, plan.backup, segments)
    finally:
        await clients.close()
    return len(segments), written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m starters.seed_data", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="plans/local.toml")
    parser.add_argument("--tenant", action="append", help="tenant id (repeatable); default: the first --count")
    parser.add_argument("--count", type=int, default=5, help="how many of the plan's tenants (default 5)")
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--instances", type=int, default=12, help="instances per segment")
    parser.add_argument("--interval-minutes", type=int, default=60)
    parser.add_argument("--start", help="ISO 8601 start of the first segment (default: segments hours ago)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    total, written = asyncio.run(_seed(args))
    typer.echo(f"{total} segments seeded ({written} written, {total - written} already there)")


if __name__ == "__main__":
    main()
