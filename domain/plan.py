"""The DR plan: an estate's regions and resources, its tenants, SLOs, approvers and requesters.

Loaded from TOML into frozen dataclasses and validated as a whole: every problem is reported
with the field it concerns and how to fix it, so that nothing starts on a half-valid plan.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import dataclasses
import difflib
import hashlib
import itertools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.errors import PlanError, PlanIssue

# Azure public-cloud region names (``az account list-locations``); a typo here must not
# surface only at 3 a.m. as a 404 from ARM.
AZURE_REGIONS = frozenset(
    {
        "australiacentral",
        "australiacentral2",
        "australiaeast",
        "australiasoutheast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "brazilsoutheast",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "centraluseuap",
        "chilecentral",
        "eastasia",
        "eastus",
        "eastus2",
        "eastus2euap",
        "francecentral",
        "francesouth",
        "germanynorth",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "jioindiacentral",
        "jioindiawest",
        "koreacentral",
        "koreasouth",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "norwaywest",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southafricawest",
        "southcentralus",
        "southindia",
        "southeastasia",
        "spaincentral",
        "swedencentral",
        "swedensouth",
        "switzerlandnorth",
        "switzerlandwest",
        "uaecentral",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westindia",
        "westus",
        "westus2",
        "westus3",
    }
)

ENVIRONMENTS = ("production", "staging", "test", "dev")
EDITIONS = ("enterprise", "pro", "free")

_MINUTE = 60
_HOUR = 3600
# The operations guide's "RPO/RTO by Environment & Edition" (seconds): (environment, edition) ->
# (RPO target, RTO target). Outside production the targets do not depend on the edition.
RECOVERY_TARGETS: dict[tuple[str, str], tuple[int, int]] = {
    ("production", "enterprise"): (5 * _MINUTE, 30 * _MINUTE),
    ("production", "pro"): (15 * _MINUTE, 30 * _MINUTE),
    ("production", "free"): (24 * _HOUR, 2 * _HOUR),
    **{("staging", edition): (1 * _HOUR, 1 * _HOUR) for edition in EDITIONS},
    **{("test", edition): (12 * _HOUR, 2 * _HOUR) for edition in EDITIONS},
    **{("dev", edition): (24 * _HOUR, 4 * _HOUR) for edition in EDITIONS},
}
TARGET_FIELDS = ("rpo_seconds", "rto_seconds")


def default_targets(environment: str, edition: str) -> tuple[int, int]:
    """The guide's (RPO, RTO) targets in seconds for an environment and edition; KeyError if unknown."""
    return RECOVERY_TARGETS[(environment, edition)]


@dataclass(frozen=True)
class FrontDoorSpec:
    resource_group: str
    profile: str
    origin_group: str
    origins: dict[str, str]  # region -> origin name


@dataclass(frozen=True)
class ServiceBusSpec:
    resource_group: str
    alias: str
    namespaces: dict[str, str]  # region -> namespace name


@dataclass(frozen=True)
class FailoverGroupSpec:
    name: str
    resource_group: str
    servers: dict[str, str]  # region -> logical server name
    databases: tuple[str, ...]


@dataclass(frozen=True)
class SqlSpec:
    failover_groups: tuple[FailoverGroupSpec, ...]


@dataclass(frozen=True)
class CosmosSpec:
    resource_group: str
    account: str
    regions: tuple[str, ...]  # failover priority order; the first is the write region


@dataclass(frozen=True)
class PlatformSpec:
    endpoints: dict[str, str]  # region -> base URL of the ops API in that region


@dataclass(frozen=True)
class SloSpec:
    max_error_rate: float = 0.01
    p95_latency_ms: float = 800.0
    min_request_count: int = 100
    validation_timeout_seconds: int = 600
    sample_interval_seconds: int = 60


@dataclass(frozen=True)
class FailoverPolicy:
    allow_data_loss: bool = False
    data_loss_grace_minutes: int = 60
    extended_outage_minutes: int = 30
    repin_batch_size: int = 500


@dataclass(frozen=True)
class FailbackPolicy:
    steps: tuple[int, ...] = (10, 25, 50, 75, 100)
    soak_seconds: int = 300
    interval_seconds: int = 60


@dataclass(frozen=True)
class Tenant:
    id: str
    home_region: str
    residency: str  # name of a residency policy
    edition: str = "enterprise"


@dataclass(frozen=True)
class TargetsSpec:
    """The plan's [targets]: its recovery objectives in seconds. None (the field left out) takes the
    operations guide's value for the plan's environment and edition (``RECOVERY_TARGETS``)."""

    rpo_seconds: int | None = None
    rto_seconds: int | None = None


DEFAULT_DRILL_CALENDAR = "first sunday 02:00 UTC"


@dataclass(frozen=True)
class Blackout:
    """A window in which no drill runs (a change freeze, a peak season): start inclusive, end
    exclusive, both ISO 8601 UTC (``...Z``)."""

    start: str
    end: str
    reason: str

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (timezone-aware) falls inside the window."""
        return _utc(self.start) <= moment < _utc(self.end)


@dataclass(frozen=True)
class DrillSpec:
    """The plan's [drill]: which estate its DR drills exercise (never the plan's own), when they run,
    the windows they keep out of, and how many tenants each drill restores."""

    estate: str  # the name of the drill estate's plan, which the workers also serve
    calendar: str = DEFAULT_DRILL_CALENDAR
    blackouts: tuple[Blackout, ...] = ()
    sample_tenants: int = 1

    def blackout_at(self, moment: datetime) -> Blackout | None:
        """The blackout window ``moment`` falls in, if any."""
        return next((b for b in self.blackouts if b.contains(moment)), None)


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Approver:
    """A person the plan lists with their Ed25519 public key: an approver ([[approvers]]), or one who may
    only request production restores ([[requesters]])."""

    name: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key


# Blob container names: 3-63 lowercase letters, digits and single hyphens, starting and ending
# with a letter or digit (Azure's rule; Azurite enforces it too).
CONTAINER_NAME_MAX = 63
CATALOG_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def is_container_name(name: str) -> bool:
    """Whether ``name`` is a valid Blob Storage container name."""
    return (
        3 <= len(name) <= CONTAINER_NAME_MAX
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
        and name.isascii()
        and name[0] != "-"
        and name[-1] != "-"
        and "--" not in name
    )


@dataclass(frozen=True)
class BackupSpec:
    """Where recovery points live and how long they are kept.

    Each tenant's live data is in its own container (``live_container_prefix`` + tenant id); recovery
    points are copied into ``backup_container``; a restore lands in a per-restore quarantine container.
    """

    account_url: str = ""  # https://<account>.blob.core.windows.net; empty: DR_BLOB_ENDPOINT must say
    live_container_prefix: str = "tenant-"
    backup_container: str = "dr-backups"
    quarantine_container_prefix: str = "dr-quarantine-"
    retention_days: int = 35
    policy_version: str = "1.0.0"
    catalog_url: str = "sqlite:///.state/backup-catalog.db"  # DR_CATALOG_URL overrides it
    signing_key: str = ""  # path of the orchestrator's Ed25519 manifest-signing key; DR_SIGNING_KEY overrides
    trusted_keys: tuple[str, ...] = ()  # base64 public keys of earlier signing keys, still trusted on restore

    def live_container(self, tenant_id: str) -> str:
        """The container that holds ``tenant_id``'s live data."""
        return self.live_container_prefix + tenant_id.lower()

    def quarantine_container(self, restore_id: str) -> str:
        """The quarantine container of one restore: a valid container name derived from ``restore_id``,
        shortened with a digest suffix when it would be too long (the same id always gives the same name)."""
        cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in restore_id.lower())
        while "--" in cleaned:
            cleaned = cleaned.replace("--", "-")
        cleaned = cleaned.strip("-")
        room = CONTAINER_NAME_MAX - len(self.quarantine_container_prefix)
        if len(cleaned) > room or cleaned != restore_id:
            digest = hashlib.sha256(restore_id.encode()).hexdigest()[:8]
            cleaned = f"{cleaned[: room - len(digest) - 1].strip('-')}-{digest}".strip("-")
        return self.quarantine_container_prefix + cleaned


@dataclass(frozen=True)
class DrPlan:
    name: str
    environment: str
    edition: str
    subscription_id: str
    primary_region: str
    dr_region: str
    frontdoor: FrontDoorSpec
    servicebus: ServiceBusSpec
    sql: SqlSpec
    cosmos: CosmosSpec
    platform: PlatformSpec
    slo: SloSpec = field(default_factory=SloSpec)
    failover: FailoverPolicy = field(default_factory=FailoverPolicy)
    failback: FailbackPolicy = field(default_factory=FailbackPolicy)
    residency: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tenants: tuple[Tenant, ...] = ()
    approvers: tuple[Approver, ...] = ()
    approvals_required: int = 2
    requesters: tuple[Approver, ...] = ()  # may request production restores besides the approvers
    backup: BackupSpec = field(default_factory=BackupSpec)
    targets: TargetsSpec = field(default_factory=TargetsSpec)
    drill: DrillSpec | None = None  # None: the plan has no [drill] table, so no drills
    source: str = ""
    digest: str = ""  # sha256 of the plan file and its tenants file: starter and worker must agree

    @property
    def regions(self) -> tuple[str, str]:
        return (self.primary_region, self.dr_region)

    def other_region(self, region: str) -> str:
        if region == self.primary_region:
            return self.dr_region
        if region == self.dr_region:
            return self.primary_region
        raise ValueError(f"region {region!r} is not part of plan {self.name!r} ({', '.join(self.regions)})")

    def tenant(self, tenant_id: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(f"tenant {tenant_id!r} is not in plan {self.name!r}")

    def may_live_in(self, tenant: Tenant, region: str) -> bool:
        """Whether the tenant's residency policy allows its data to be served from ``region``."""
        return region in self.residency.get(tenant.residency, ())

    def approver(self, name: str) -> Approver | None:
        return next((a for a in self.approvers if a.name == name), None)

    def requester(self, name: str) -> Approver | None:
        """Who may sign a production restore request under ``name``: an approver or a listed requester."""
        return next((p for p in (*self.approvers, *self.requesters) if p.name == name), None)

    @property
    def rpo_target_seconds(self) -> int:
        """The plan's RPO target: [targets].rpo_seconds, else the guide's for its environment and edition."""
        if self.targets.rpo_seconds is not None:
            return self.targets.rpo_seconds
        return default_targets(self.environment, self.edition)[0]

    @property
    def rto_target_seconds(self) -> int:
        """The plan's RTO target: [targets].rto_seconds, else the guide's for its environment and edition."""
        if self.targets.rto_seconds is not None:
            return self.targets.rto_seconds
        return default_targets(self.environment, self.edition)[1]

    def tenant_rpo_seconds(self, tenant: Tenant) -> int:
        """A tenant's RPO target: the plan's explicit [targets].rpo_seconds, else the guide's for the
        plan's environment and the tenant's own edition (a free tenant of an enterprise estate is
        backed up daily, not every five minutes)."""
        if self.targets.rpo_seconds is not None:
            return self.targets.rpo_seconds
        return default_targets(self.environment, tenant.edition)[0]


class _Reader:
    """Walks the parsed TOML, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[PlanIssue] = []

    def problem(self, field_name: str, problem: str, fix: str) -> None:
        self.issues.append(PlanIssue(field_name, problem, fix))

    def table(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.problem(f"{path}{key}", "missing table", f"add a [{path}{key}] table")
            return {}
        if not isinstance(value, dict):
            self.problem(f"{path}{key}", f"expected a table, found {type(value).__name__}", f"make it [{path}{key}]")
            return {}
        return value

    def text(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value is None:
            self.problem(f"{path}{key}", "missing", f'set {key} = "..." in [{path.rstrip(".")}]')
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{path}{key}", f"expected a non-empty string, found {value!r}", f'set {key} = "..."')
            return ""
        return value.strip()

    def number(
        self, data: Mapping[str, Any], key: str, path: str, default: float, *, minimum: float, integer: bool
    ) -> float:
        value = data.get(key, default)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            self.problem(f"{path}{key}", f"expected a number, found {value!r}", f"set {key} = {default}")
            return default
        if value < minimum:
            self.problem(f"{path}{key}", f"must be at least {minimum}, found {value}", f"set {key} >= {minimum}")
            return default
        return value

    def flag(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(
                f"{path}{key}", f"expected true or false, found {value!r}", f"set {key} = {str(default).lower()}"
            )
            return default
        return value

    def region(self, value: Any, field_name: str, allowed: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or value not in AZURE_REGIONS:
            close = difflib.get_close_matches(str(value), sorted(AZURE_REGIONS), n=1)
            hint = f'did you mean "{close[0]}"?' if close else "use an Azure region name such as eastus"
            self.problem(field_name, f"unknown Azure region {value!r}", hint)
            return str(value)
        if allowed is not None and value not in allowed:
            self.problem(
                field_name,
                f"region {value!r} is not one of the plan's regions ({', '.join(allowed)})",
                "use plan.primary_region or plan.dr_region",
            )
        return value

    def per_region(
        self, data: Mapping[str, Any], key: str, path: str, regions: tuple[str, ...], what: str
    ) -> dict[str, str]:
        table = self.table(data, key, path)
        result: dict[str, str] = {}
        # A misspelt plan region is reported once (plan.*_region), not again for every per-region table.
        known = tuple(reg for reg in regions if reg in AZURE_REGIONS)
        for region_name, value in table.items():
            self.region(region_name, f"{path}{key}.{region_name}", regions if known == regions else None)
            if not isinstance(value, str) or not value:
                self.problem(f"{path}{key}.{region_name}", f"expected the {what} name", f'{region_name} = "name"')
                continue
            result[region_name] = value
        for region_name in known:
            if table and region_name not in table:
                self.problem(
                    f"{path}{key}.{region_name}",
                    f"no {what} for region {region_name}",
                    f'add {region_name} = "<{what} name>" to [{path}{key}]',
                )
        return result


def load_plan(path: str | Path) -> DrPlan:
    """Read and validate a plan file; raises PlanError listing every problem."""
    plan_path = Path(path)
    try:
        raw = tomllib.loads(plan_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlanError(str(plan_path), [PlanIssue("file", "not found", "pass the path of a plan .toml")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(str(plan_path), [PlanIssue("file", f"not valid TOML: {exc}", "fix the syntax")]) from exc
    plan = parse_plan(raw, source=str(plan_path), base_dir=plan_path.parent)
    return dataclasses.replace(plan, digest=plan_digest(plan_path, raw))


def plan_digest(path: Path, raw: Mapping[str, Any]) -> str:
    """SHA-256 over the plan file and the tenants file it names."""
    h = hashlib.sha256(path.read_bytes())
    tenants_file = raw.get("tenants_file")
    if tenants_file:
        with contextlib.suppress(FileNotFoundError):
            h.update((path.parent / str(tenants_file)).read_bytes())
    return h.hexdigest()


def parse_plan(raw: Mapping[str, Any], *, source: str = "<plan>", base_dir: Path | None = None) -> DrPlan:
    r = _Reader()
    head = r.table(raw, "plan", "")
    name = r.text(head, "name", "plan.")
    environment = r.text(head, "environment", "plan.", "production")
    if environment and environment not in ENVIRONMENTS:
        r.problem("plan.environment", f"unknown environment {environment!r}", f"use one of {', '.join(ENVIRONMENTS)}")
    edition = r.text(head, "edition", "plan.", "enterprise")
    if edition and edition not in EDITIONS:
        r.problem("plan.edition", f"unknown edition {edition!r}", f"use one of {', '.join(EDITIONS)}")
    subscription = r.text(head, "subscription_id", "plan.")
    primary = r.region(head.get("primary_region"), "plan.primary_region")
    dr = r.region(head.get("dr_region"), "plan.dr_region")
    if primary and primary == dr:
        r.problem("plan.dr_region", f"DR region equals the primary region ({primary})", "choose a different region")
    regions = (primary, dr)

    fd = r.table(raw, "frontdoor", "")
    frontdoor = FrontDoorSpec(
        resource_group=r.text(fd, "resource_group", "frontdoor."),
        profile=r.text(fd, "profile", "frontdoor."),
        origin_group=r.text(fd, "origin_group", "frontdoor."),
        origins=r.per_region(fd, "origins", "frontdoor.", regions, "origin"),
    )

    sb = r.table(raw, "servicebus", "")
    servicebus = ServiceBusSpec(
        resource_group=r.text(sb, "resource_group", "servicebus."),
        alias=r.text(sb, "alias", "servicebus."),
        namespaces=r.per_region(sb, "namespaces", "servicebus.", regions, "namespace"),
    )

    sql_raw = r.table(raw, "sql", "")
    groups: list[FailoverGroupSpec] = []
    seen_groups: set[str] = set()
    raw_groups = sql_raw.get("failover_groups", [])
    if not isinstance(raw_groups, list) or not raw_groups:
        r.problem("sql.failover_groups", "no failover group", "add at least one [[sql.failover_groups]]")
        raw_groups = []
    for i, g in enumerate(raw_groups):
        path = f"sql.failover_groups[{i}]."
        if not isinstance(g, dict):
            r.problem(path.rstrip("."), "expected a table", "use [[sql.failover_groups]]")
            continue
        gname = r.text(g, "name", path)
        if gname in seen_groups:
            r.problem(f"{path}name", f"duplicate failover group {gname!r}", "give each group a unique name")
        seen_groups.add(gname)
        dbs = g.get("databases", [])
        if not isinstance(dbs, list) or not dbs or not all(isinstance(d, str) and d for d in dbs):
            r.problem(f"{path}databases", "expected a non-empty list of database names", 'databases = ["db1"]')
            dbs = []
        groups.append(
            FailoverGroupSpec(
                name=gname,
                resource_group=r.text(g, "resource_group", path),
                servers=r.per_region(g, "servers", path, regions, "server"),
                databases=tuple(dbs),
            )
        )

    cos = r.table(raw, "cosmos", "")
    cosmos_regions = cos.get("regions", [primary, dr])
    if not isinstance(cosmos_regions, list) or not cosmos_regions:
        r.problem(
            "cosmos.regions",
            "expected a list of regions in failover priority order",
            f'regions = ["{primary}", "{dr}"]',
        )
        cosmos_regions = [primary, dr]
    for i, reg in enumerate(cosmos_regions):
        r.region(reg, f"cosmos.regions[{i}]")
    for reg in regions:
        if reg in AZURE_REGIONS and reg not in cosmos_regions:
            r.problem(
                "cosmos.regions", f"plan region {reg} is not a Cosmos DB region", f"add {reg!r} to cosmos.regions"
            )
    if cosmos_regions and primary in AZURE_REGIONS and cosmos_regions[0] != primary:
        r.problem(
            "cosmos.regions",
            "the first region (the write region) must be the primary region",
            f'start with "{primary}"',
        )
    cosmos = CosmosSpec(
        resource_group=r.text(cos, "resource_group", "cosmos."),
        account=r.text(cos, "account", "cosmos."),
        regions=tuple(str(x) for x in cosmos_regions),
    )

    plat = r.table(raw, "platform", "")
    platform = PlatformSpec(endpoints=r.per_region(plat, "endpoints", "platform.", regions, "ops endpoint URL"))
    for reg, url in platform.endpoints.items():
        if not url.startswith("https://"):
            r.problem(
                f"platform.endpoints.{reg}", f"{url!r} is not an https URL", "use https://host/ops (TLS is required)"
            )

    s = r.table(raw, "slo", "", required=False)
    slo = SloSpec(
        max_error_rate=r.number(s, "max_error_rate", "slo.", 0.01, minimum=0, integer=False),
        p95_latency_ms=r.number(s, "p95_latency_ms", "slo.", 800.0, minimum=1, integer=False),
        min_request_count=int(r.number(s, "min_request_count", "slo.", 100, minimum=0, integer=True)),
        validation_timeout_seconds=int(r.number(s, "validation_timeout_seconds", "slo.", 600, minimum=1, integer=True)),
        sample_interval_seconds=int(r.number(s, "sample_interval_seconds", "slo.", 60, minimum=1, integer=True)),
    )
    if slo.max_error_rate > 1:
        r.problem("slo.max_error_rate", "is a fraction between 0 and 1", "e.g. 0.01 for 1 %")

    fo = r.table(raw, "failover", "", required=False)
    failover = FailoverPolicy(
        allow_data_loss=r.flag(fo, "allow_data_loss", "failover.", False),
        data_loss_grace_minutes=int(r.number(fo, "data_loss_grace_minutes", "failover.", 60, minimum=0, integer=True)),
        extended_outage_minutes=int(r.number(fo, "extended_outage_minutes", "failover.", 30, minimum=1, integer=True)),
        repin_batch_size=int(r.number(fo, "repin_batch_size", "failover.", 500, minimum=1, integer=True)),
    )

    fb = r.table(raw, "failback", "", required=False)
    steps = fb.get("steps", [10, 25, 50, 75, 100])
    failback = FailbackPolicy(
        steps=tuple(steps) if isinstance(steps, list) else (10, 25, 50, 75, 100),
        soak_seconds=int(r.number(fb, "soak_seconds", "failback.", 300, minimum=1, integer=True)),
        interval_seconds=int(r.number(fb, "interval_seconds", "failback.", 60, minimum=1, integer=True)),
    )
    for issue in validate_failback_steps(failback.steps, failback.soak_seconds, failback.interval_seconds):
        # The shared rules name the command line's --soak; in the plan the field is soak_seconds.
        plan_field = {"soak": "soak_seconds"}.get(issue.field, issue.field)
        r.issues.append(PlanIssue(f"failback.{plan_field}", issue.problem, issue.fix))

    residency: dict[str, tuple[str, ...]] = {}
    for pname, pval in r.table(raw, "residency", "").items():
        allowed = pval.get("regions") if isinstance(pval, dict) else None
        if not isinstance(allowed, list) or not allowed:
            r.problem(f"residency.{pname}.regions", "expected a non-empty list of regions", f'regions = ["{primary}"]')
            continue
        for i, reg in enumerate(allowed):
            r.region(reg, f"residency.{pname}.regions[{i}]")
        residency[pname] = tuple(allowed)

    tenants = _read_tenants(r, raw, regions, residency, base_dir)

    approvers = _read_people(r, raw, "approvers")
    requesters = _read_people(r, raw, "requesters", approvers)
    approvals_required = int(r.number(head, "approvals_required", "plan.", 2, minimum=1, integer=True))
    if raw.get("approvers") and approvals_required > len(approvers):
        r.problem(
            "plan.approvals_required",
            f"requires {approvals_required} approvals but the plan lists {len(approvers)} approver(s)",
            "add approvers or lower approvals_required",
        )

    backup = _read_backup(r, raw, tenants, base_dir)
    targets = _read_targets(r, raw)
    drill = _read_drill(r, raw, name)

    if r.issues:
        raise PlanError(source, r.issues)
    return DrPlan(
        name=name,
        environment=environment,
        edition=edition,
        subscription_id=subscription,
        primary_region=primary,
        dr_region=dr,
        frontdoor=frontdoor,
        servicebus=servicebus,
        sql=SqlSpec(tuple(groups)),
        cosmos=cosmos,
        platform=platform,
        slo=slo,
        failover=failover,
        failback=failback,
        residency=residency,
        tenants=tenants,
        approvers=tuple(approvers),
        approvals_required=approvals_required,
        requesters=tuple(requesters),
        backup=backup,
        targets=targets,
        drill=drill,
        source=source,
    )


# Why one key must not stand for two names, per roster.
_SHARED_KEY = {
    "approvers": "one key would count as two approvals",
    "requesters": "one key would stand for two people",
}


def _read_people(r: _Reader, raw: Mapping[str, Any], table: str, approvers: Sequence[Approver] = ()) -> list[Approver]:
    """The names and public keys of ``[[table]]`` ("approvers" or "requesters"). Reading requesters,
    ``approvers`` are the plan's approvers: a requester may not reuse an approver's name or key, or
    that approver could request a restore under another name and approve it."""
    role = table.removesuffix("s")
    people: list[Approver] = []
    seen: set[str] = set()
    approver_names = {a.name for a in approvers}
    for i, entry in enumerate(raw.get(table, [])):
        path = f"{table}[{i}]."
        name = r.text(entry, "name", path) if isinstance(entry, dict) else ""
        if name in seen:
            r.problem(f"{path}name", f"duplicate {role} {name!r}", f"list each {role} once")
        elif name in approver_names:
            r.problem(
                f"{path}name",
                f"{role} {name!r} is already an approver (approvers may request restores)",
                f"remove {name!r} from [[{table}]]",
            )
        seen.add(name)
        key = entry.get("public_key") if isinstance(entry, dict) else None
        if not key:
            r.problem(
                f"{path}public_key",
                f"{role} {name!r} has no public key",
                f"run `drctl keys generate {name or 'NAME'}` and paste the printed public_key",
            )
            continue
        if not _is_ed25519_public_key(str(key)):
            r.problem(
                f"{path}public_key",
                "not a base64 Ed25519 public key (32 bytes)",
                "paste the key printed by `drctl keys generate`",
            )
            continue
        fix = f"run `drctl keys generate {name or 'NAME'}` for a key of their own"
        holder = next((p.name for p in people if p.public_key == str(key)), None)
        if holder is not None:
            r.problem(f"{path}public_key", f"{role} {name!r} has the same key as {holder!r}: {_SHARED_KEY[table]}", fix)
            continue
        approver = next((a.name for a in approvers if a.public_key == str(key)), None)
        if approver is not None:
            r.problem(
                f"{path}public_key",
                f"{role} {name!r} has the same key as approver {approver!r}, who could then request a restore "
                f"as {name!r} and approve it",
                fix,
            )
            continue
        people.append(Approver(name, str(key)))
    return people


def validate_failback_steps(steps: Any, soak_seconds: int, interval_seconds: int) -> list[PlanIssue]:
    """Rules for a traffic-shift schedule, shared by the plan and the failback command line."""
    issues: list[PlanIssue] = []
    if (
        not isinstance(steps, (list, tuple))
        or not steps
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
    ):
        return [PlanIssue("steps", f"expected a list of whole percentages, found {steps!r}", "e.g. 10,25,50,75,100")]
    if any(s <= 0 or s > 100 for s in steps):
        issues.append(
            PlanIssue("steps", f"every step must be between 1 and 100 %, found {list(steps)}", "e.g. 10,25,50,75,100")
        )
    if any(b <= a for a, b in itertools.pairwise(steps)):
        issues.append(PlanIssue("steps", f"steps must strictly increase, found {list(steps)}", "e.g. 10,25,50,75,100"))
    if steps[-1] != 100:
        issues.append(PlanIssue("steps", f"the last step must be 100 %, found {steps[-1]}", "end the list with 100"))
    if soak_seconds < interval_seconds:
        issues.append(
            PlanIssue(
                "soak",
                f"soak ({soak_seconds}s) is shorter than the sampling interval ({interval_seconds}s)",
                "make the soak at least one interval long",
            )
        )
    return issues


def _read_targets(r: _Reader, raw: Mapping[str, Any]) -> TargetsSpec:
    """The optional [targets] table: whole seconds, each at least 1; a field left out takes the
    guide's value for the plan's environment and edition."""
    t = r.table(raw, "targets", "", required=False)
    for key in t:
        if key not in TARGET_FIELDS:
            close = difflib.get_close_matches(str(key), TARGET_FIELDS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use {' or '.join(TARGET_FIELDS)} (whole seconds)"
            r.problem(f"targets.{key}", "unknown field", hint)
    values: dict[str, int | None] = {}
    for key in TARGET_FIELDS:
        value = t.get(key)
        what = key.split("_")[0].upper()
        if value is None:
            values[key] = None
        elif isinstance(value, bool) or not isinstance(value, int):
            r.problem(
                f"targets.{key}",
                f"expected whole seconds, found {value!r}",
                f"e.g. {key} = 300 for 5 minutes; leave it out for the operations guide's {what} target",
            )
            values[key] = None
        elif value < 1:
            r.problem(f"targets.{key}", f"must be at least 1 second, found {value}", f"set {key} >= 1")
            values[key] = None
        else:
            values[key] = value
    return TargetsSpec(rpo_seconds=values["rpo_seconds"], rto_seconds=values["rto_seconds"])


DRILL_FIELDS = ("estate", "calendar", "blackouts", "sample_tenants")


def _read_drill(r: _Reader, raw: Mapping[str, Any], plan_name: str) -> DrillSpec | None:
    """The optional [drill] table: the drill estate (another plan), the calendar, blackout windows
    (``[[drill.blackouts]]`` with start, end and reason) and the tenants restored per drill."""
    if raw.get("drill") is None:
        return None
    d = r.table(raw, "drill", "")
    for key in d:
        if key not in DRILL_FIELDS:
            close = difflib.get_close_matches(str(key), DRILL_FIELDS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use {', '.join(DRILL_FIELDS)}"
            r.problem(f"drill.{key}", "unknown field", hint)
    estate = r.text(d, "estate", "drill.")
    if estate and estate == plan_name:
        r.problem(
            "drill.estate",
            f"names this plan ({plan_name}) itself: a drill would fail production over",
            'name the plan of a separate drill estate, e.g. estate = "local-drill"',
        )
    calendar = r.text(d, "calendar", "drill.", DEFAULT_DRILL_CALENDAR)
    sample = int(r.number(d, "sample_tenants", "drill.", 1, minimum=1, integer=True))
    raw_blackouts = d.get("blackouts", [])
    if not isinstance(raw_blackouts, list):
        r.problem("drill.blackouts", "expected [[drill.blackouts]] tables", "add [[drill.blackouts]] start/end/reason")
        raw_blackouts = []
    blackouts: list[Blackout] = []
    for i, b in enumerate(raw_blackouts):
        path = f"drill.blackouts[{i}]."
        if not isinstance(b, dict):
            r.problem(path.rstrip("."), "expected a table", "use [[drill.blackouts]] with start, end and reason")
            continue
        start, end = _instant(r, b, "start", path), _instant(r, b, "end", path)
        reason = r.text(b, "reason", path)
        if start and end and _utc(end) <= _utc(start):
            r.problem(f"{path}end", f"ends ({end}) before it starts ({start})", "give an end after the start")
            continue
        if start and end and reason:
            blackouts.append(Blackout(start, end, reason))
    return DrillSpec(estate=estate, calendar=calendar, blackouts=tuple(blackouts), sample_tenants=sample)


def _instant(r: _Reader, data: Mapping[str, Any], key: str, path: str) -> str:
    """A point in time with a timezone (a TOML offset date-time or an ISO 8601 string) as ``...Z``."""
    value = data.get(key)
    fix = f"{key} = 2026-12-20T00:00:00Z (UTC, or with an offset)"
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment is None:
        r.problem(f"{path}{key}", f"expected a date and time, found {value!r}", fix)
        return ""
    if moment.tzinfo is None:
        r.problem(f"{path}{key}", f"{value!s} has no timezone", fix)
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_backup(r: _Reader, raw: Mapping[str, Any], tenants: tuple[Tenant, ...], base_dir: Path | None) -> BackupSpec:
    """The optional [backup] table; every tenant's live container name must be valid too."""
    b = r.table(raw, "backup", "", required=False)
    d = BackupSpec()
    account_url = str(b.get("account_url", "")).strip()
    if account_url and not account_url.startswith("https://"):
        r.problem(
            "backup.account_url",
            f"{account_url!r} is not an https URL",
            "use https://<account>.blob.core.windows.net (leave it out to take DR_BLOB_ENDPOINT)",
        )
    live_prefix = r.text(b, "live_container_prefix", "backup.", d.live_container_prefix)
    backup_container = r.text(b, "backup_container", "backup.", d.backup_container)
    quarantine_prefix = r.text(b, "quarantine_container_prefix", "backup.", d.quarantine_container_prefix)
    container_rule = "3-63 lowercase letters, digits and single hyphens, starting with a letter or digit"
    if backup_container and not is_container_name(backup_container):
        r.problem("backup.backup_container", f"{backup_container!r} is not a valid container name", container_rule)
    for key, prefix in (("live_container_prefix", live_prefix), ("quarantine_container_prefix", quarantine_prefix)):
        # A prefix starts container names (it may end with a hyphen) and leaves room for a digest suffix.
        if prefix and (not is_container_name(prefix + "x1") or len(prefix) > CONTAINER_NAME_MAX - 13):
            r.problem(
                f"backup.{key}",
                f"{prefix!r} cannot start a valid container name",
                f"at most {CONTAINER_NAME_MAX - 13} characters; names are {container_rule}",
            )
    if live_prefix and live_prefix == quarantine_prefix:
        r.problem(
            "backup.quarantine_container_prefix",
            "equals live_container_prefix, so a quarantine could take a tenant's live container name",
            'use a distinct prefix such as "dr-quarantine-"',
        )
    bad = [t.id for t in tenants if not is_container_name(live_prefix + t.id.lower())]
    if live_prefix and bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        r.problem(
            "backup.live_container_prefix",
            f"gives invalid container names for tenant(s) {shown}",
            f"tenant containers are <prefix><tenant id> and must be {container_rule}",
        )
    retention = int(r.number(b, "retention_days", "backup.", d.retention_days, minimum=1, integer=True))
    policy_version = r.text(b, "policy_version", "backup.", d.policy_version)
    catalog_url = r.text(b, "catalog_url", "backup.", d.catalog_url)
    if catalog_url and not catalog_url.startswith(CATALOG_SCHEMES):
        # A URL that may hold a password is shown by its scheme alone.
        secret = "@" in catalog_url or "password" in catalog_url.lower()
        shown = catalog_url.partition("://")[0] + "://..." if secret else catalog_url
        r.problem(
            "backup.catalog_url",
            f"unsupported catalog URL {shown!r}",
            'use "sqlite:///path/to/catalog.db" (a relative path is taken from the worker\'s working folder) or '
            '"postgresql://user:password@host:5432/database"',
        )
    signing_key = str(b.get("signing_key", "")).strip()
    if signing_key and base_dir is not None and not Path(signing_key).is_absolute():
        signing_key = str(base_dir / signing_key)
    trusted: list[str] = []
    raw_trusted = b.get("trusted_keys", [])
    if not isinstance(raw_trusted, list):
        r.problem("backup.trusted_keys", "expected a list of base64 public keys", 'trusted_keys = ["<base64>"]')
        raw_trusted = []
    for i, key in enumerate(raw_trusted):
        if not isinstance(key, str) or not _is_ed25519_public_key(key):
            r.problem(
                f"backup.trusted_keys[{i}]",
                "not a base64 Ed25519 public key (32 bytes)",
                "paste the public key of the earlier signing key",
            )
            continue
        trusted.append(key)
    return BackupSpec(
        account_url=account_url,
        live_container_prefix=live_prefix,
        backup_container=backup_container,
        quarantine_container_prefix=quarantine_prefix,
        retention_days=retention,
        policy_version=policy_version,
        catalog_url=catalog_url,
        signing_key=signing_key,
        trusted_keys=tuple(trusted),
    )


def _is_ed25519_public_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _read_tenants(
    r: _Reader,
    raw: Mapping[str, Any],
    regions: tuple[str, ...],
    residency: Mapping[str, tuple[str, ...]],
    base_dir: Path | None,
) -> tuple[Tenant, ...]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for i, t in enumerate(raw.get("tenants", [])):
        rows.append((f"tenants[{i}]", t if isinstance(t, dict) else {}))
    tenants_file = raw.get("tenants_file")
    if tenants_file:
        file_path = (base_dir or Path()) / str(tenants_file)
        try:
            with file_path.open(newline="", encoding="utf-8") as fh:
                for line_no, row in enumerate(csv.DictReader(fh), start=2):
                    rows.append((f"{tenants_file}:{line_no}", dict(row)))
        except FileNotFoundError:
            r.problem("tenants_file", f"{file_path} not found", "give a CSV path relative to the plan file")
    tenants: list[Tenant] = []
    seen: set[str] = set()
    # With a misspelt plan region (already reported) every tenant would otherwise be flagged too.
    allowed = regions if all(reg in AZURE_REGIONS for reg in regions) else None
    for where, row in rows:
        tid = str(row.get("id") or "").strip()
        if not tid:
            r.problem(f"{where}.id", "tenant without id", "give every tenant an id")
            continue
        if tid in seen:
            r.problem(f"{where}.id", f"duplicate tenant {tid!r}", "list each tenant once")
            continue
        seen.add(tid)
        home = str(row.get("home_region") or "")
        r.region(home, f"{where}.home_region", allowed)
        policy = str(row.get("residency") or "")
        if policy not in residency:
            known = ", ".join(sorted(residency)) or "none defined"
            r.problem(
                f"{where}.residency",
                f"unknown residency policy {policy!r} (known: {known})",
                "add a [residency.NAME] table or fix the name",
            )
        elif home not in residency[policy]:
            r.problem(
                f"{where}.residency",
                f"policy {policy!r} does not allow the tenant's home region {home}",
                "choose a policy that includes it",
            )
        edition = str(row.get("edition") or "enterprise")
        if edition not in EDITIONS:
            r.problem(f"{where}.edition", f"unknown edition {edition!r}", f"use one of {', '.join(EDITIONS)}")
        tenants.append(Tenant(tid, home, policy, edition))
    return tuple(tenants)
