"""Plan validation: every problem names its field and how to fix it, all problems at once."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from domain.errors import PlanError, PlanIssue
from domain.plan import is_container_name, load_plan, parse_plan
from starters.cli import app

PLANS = Path(__file__).resolve().parents[2] / "plans"
LOCAL_RAW: dict[str, Any] = tomllib.loads((PLANS / "local.toml").read_text(encoding="utf-8"))

ALICE_KEY = "dyIqRqn0elm4JZC9dGlTV7p05ac4lt6VetjT94mA/Ow="
BOB_KEY = "fLofNjf86TGiKZ/EmZgYw0ZEys4GYCEFKl5scfyC7CE="

Edit = Callable[[dict[str, Any]], None]


def local_raw(*edits: Edit, inline_tenants: bool = False) -> dict[str, Any]:
    """A deep copy of plans/local.toml with ``edits`` applied; optionally tenants inline instead of the CSV."""
    raw = copy.deepcopy(LOCAL_RAW)
    if inline_tenants:
        del raw["tenants_file"]
        raw["tenants"] = [
            {"id": "t1", "home_region": "eastus", "residency": "us"},
            {"id": "t2", "home_region": "westus", "residency": "westus-only", "edition": "free"},
        ]
    for edit in edits:
        edit(raw)
    return raw


def issues(*edits: Edit, inline_tenants: bool = True) -> list[PlanIssue]:
    """The problems parse_plan reports for local.toml with ``edits`` applied (it must refuse it)."""
    with pytest.raises(PlanError) as refused:
        parse_plan(local_raw(*edits, inline_tenants=inline_tenants), source="edited.toml", base_dir=PLANS)
    return refused.value.issues


def the_issue(found: list[PlanIssue], field: str) -> PlanIssue:
    """The single issue about ``field``; fails listing what was reported instead."""
    matching = [i for i in found if i.field == field]
    assert len(matching) == 1, f"expected one issue for {field}, got: {[str(i) for i in found]}"
    return matching[0]


def set_key(*path: str | int, value: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def delete_key(*path: str | int) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


class TestShippedPlans:
    def test_local_plan_loads(self) -> None:
        """plans/local.toml is valid and holds the emulator's estate with its 300 CSV tenants."""
        plan = load_plan(PLANS / "local.toml")
        assert plan.regions == ("eastus", "westus")
        assert len(plan.tenants) == 300
        assert plan.digest

    def test_example_azure_plan_loads(self) -> None:
        """plans/example-azure.toml is valid, with inline tenants and approvers holding real Ed25519 keys."""
        plan = load_plan(PLANS / "example-azure.toml")
        assert plan.regions == ("eastus2", "centralus")
        assert [t.id for t in plan.tenants] == ["t-fabrikam", "t-northwind", "t-tailspin"]
        assert [a.name for a in plan.approvers] == ["alice", "bob", "carol"]
        assert plan.approvals_required <= len(plan.approvers)


class TestRegions:
    def test_unknown_region_suggests_the_closest_name(self) -> None:
        """A misspelt region is reported on its field with a "did you mean" hint."""
        issue = the_issue(issues(set_key("plan", "dr_region", value="westuss")), "plan.dr_region")
        assert "unknown Azure region 'westuss'" in issue.problem
        assert 'did you mean "westus"?' in issue.fix

    def test_misspelt_plan_region_is_reported_once(self) -> None:
        """A misspelt plan region does not cascade into a problem per resource or per tenant."""
        found = issues(set_key("plan", "primary_region", value="eastuss"), inline_tenants=False)
        assert [i.field for i in found] == ["plan.primary_region"]

    def test_dr_region_equal_to_primary_is_refused(self) -> None:
        """Failing over to the region that failed is refused on plan.dr_region."""
        issue = the_issue(issues(set_key("plan", "dr_region", value="eastus")), "plan.dr_region")
        assert "equals the primary region" in issue.problem
        assert "choose a different region" in issue.fix

    def test_origin_missing_for_a_region(self) -> None:
        """A Front Door origin missing for the DR region names that region's field and what to add."""
        issue = the_issue(issues(delete_key("frontdoor", "origins", "westus")), "frontdoor.origins.westus")
        assert "no origin for region westus" in issue.problem
        assert 'add westus = "<origin name>" to [frontdoor.origins]' in issue.fix

    def test_cosmos_write_region_must_be_the_primary(self) -> None:
        """Cosmos regions in the wrong priority order are refused with the expected first region."""
        issue = the_issue(issues(set_key("cosmos", "regions", value=["westus", "eastus"])), "cosmos.regions")
        assert "write region" in issue.problem
        assert 'start with "eastus"' in issue.fix


class TestTenants:
    def test_duplicate_tenant(self) -> None:
        """A tenant listed twice is reported on the second listing."""

        def duplicate(raw: dict[str, Any]) -> None:
            raw["tenants"].append({"id": "t1", "home_region": "eastus", "residency": "us"})

        issue = the_issue(issues(duplicate), "tenants[2].id")
        assert "duplicate tenant 't1'" in issue.problem
        assert "list each tenant once" in issue.fix

    def test_duplicate_between_inline_tenants_and_the_csv(self) -> None:
        """A tenant both inline and in the tenants file is reported at its CSV line."""

        def duplicate(raw: dict[str, Any]) -> None:
            raw["tenants"] = [{"id": "t0001-globex", "home_region": "eastus", "residency": "us"}]

        issue = the_issue(issues(duplicate, inline_tenants=False), "local-tenants.csv:2.id")
        assert "duplicate tenant 't0001-globex'" in issue.problem
        assert "list each tenant once" in issue.fix

    def test_unknown_residency_policy(self) -> None:
        """A tenant naming an undefined residency policy lists the known ones and how to add one."""
        issue = the_issue(issues(set_key("tenants", 0, "residency", value="eu")), "tenants[0].residency")
        assert "unknown residency policy 'eu'" in issue.problem
        assert "eastus-only, us, westus-only" in issue.problem
        assert "add a [residency.NAME] table" in issue.fix

    def test_home_region_not_allowed_by_residency(self) -> None:
        """A tenant homed outside the regions its residency policy allows is refused."""
        issue = the_issue(
            issues(set_key("tenants", 0, "residency", value="westus-only")),
            "tenants[0].residency",
        )
        assert "does not allow the tenant's home region eastus" in issue.problem
        assert "choose a policy that includes it" in issue.fix

    def test_missing_tenants_file(self) -> None:
        """A tenants_file that does not exist is reported with where it was looked for."""
        issue = the_issue(issues(set_key("tenants_file", value="nope.csv"), inline_tenants=False), "tenants_file")
        assert "nope.csv not found" in issue.problem
        assert "relative to the plan file" in issue.fix


class TestApprovers:
    def test_approver_without_key(self) -> None:
        """An approver with no public key is told how to make one."""
        found = issues(set_key("approvers", value=[{"name": "alice"}]), set_key("plan", "approvals_required", value=1))
        issue = the_issue(found, "approvers[0].public_key")
        assert "approver 'alice' has no public key" in issue.problem
        assert "drctl keys generate alice" in issue.fix

    @pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ=", ALICE_KEY[:-4]])
    def test_malformed_approver_key(self, key: str) -> None:
        """A key that is not base64 of exactly 32 bytes is refused on its field."""
        approvers = [{"name": "alice", "public_key": key}, {"name": "bob", "public_key": BOB_KEY}]
        found = issues(set_key("approvers", value=approvers), set_key("plan", "approvals_required", value=1))
        issue = the_issue(found, "approvers[0].public_key")
        assert "not a base64 Ed25519 public key" in issue.problem
        assert "drctl keys generate" in issue.fix

    def test_two_approvers_with_one_key(self) -> None:
        """Two approver names sharing a key would let one person approve twice, so the second is refused."""
        approvers = [{"name": "alice", "public_key": ALICE_KEY}, {"name": "mallory", "public_key": ALICE_KEY}]
        found = issues(set_key("approvers", value=approvers), set_key("plan", "approvals_required", value=1))
        issue = the_issue(found, "approvers[1].public_key")
        assert "'mallory' has the same key as 'alice'" in issue.problem
        assert "drctl keys generate mallory" in issue.fix

    def test_more_approvals_required_than_approvers(self) -> None:
        """Requiring more approvals than there are approvers would block every restore, so it is refused."""
        found = issues(set_key("approvers", value=[{"name": "alice", "public_key": ALICE_KEY}]))
        issue = the_issue(found, "plan.approvals_required")
        assert "requires 2 approvals but the plan lists 1 approver(s)" in issue.problem
        assert "add approvers or lower approvals_required" in issue.fix

    def test_valid_approvers_load(self) -> None:
        """Two approvers with valid keys satisfy approvals_required = 2."""
        approvers = [{"name": "alice", "public_key": ALICE_KEY}, {"name": "bob", "public_key": BOB_KEY}]
        plan = parse_plan(local_raw(set_key("approvers", value=approvers), inline_tenants=True), base_dir=PLANS)
        assert plan.approver("bob") is not None
        assert plan.approver("mallory") is None


class TestRequesters:
    def test_the_local_plan_lists_the_demo_requester(self) -> None:
        """plans/local.toml lets incident-commander request, with the key in plans/demo-keys/, besides its approvers."""
        plan = load_plan(PLANS / "local.toml")
        expected = (PLANS / "demo-keys" / "incident-commander.pub").read_text(encoding="ascii").strip()
        assert [(r.name, r.public_key) for r in plan.requesters] == [("incident-commander", expected)]
        requester = plan.requester("incident-commander")
        assert requester is not None
        assert requester.public_key == expected
        assert plan.requester("bob") == plan.approver("bob")
        assert plan.approver("incident-commander") is None
        assert plan.requester("mallory") is None

    def test_duplicate_requester(self) -> None:
        """A requester listed twice is refused on the second entry's name."""
        requesters = [{"name": "dave", "public_key": ALICE_KEY}, {"name": "dave", "public_key": BOB_KEY}]
        issue = the_issue(issues(set_key("requesters", value=requesters)), "requesters[1].name")
        assert "duplicate requester 'dave'" in issue.problem
        assert "list each requester once" in issue.fix

    def test_requester_named_like_an_approver(self) -> None:
        """A requester with an approver's name would give that name two keys, so it is refused."""
        issue = the_issue(
            issues(set_key("requesters", value=[{"name": "bob", "public_key": ALICE_KEY}])), "requesters[0].name"
        )
        assert "requester 'bob' is already an approver" in issue.problem
        assert "remove 'bob' from [[requesters]]" in issue.fix

    def test_requester_without_key(self) -> None:
        """A requester with no public key is told how to make one."""
        issue = the_issue(issues(set_key("requesters", value=[{"name": "dave"}])), "requesters[0].public_key")
        assert "requester 'dave' has no public key" in issue.problem
        assert "drctl keys generate dave" in issue.fix

    @pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ=", ALICE_KEY[:-4]])
    def test_malformed_requester_key(self, key: str) -> None:
        """A requester key that is not base64 of exactly 32 bytes is refused on its field."""
        issue = the_issue(
            issues(set_key("requesters", value=[{"name": "dave", "public_key": key}])), "requesters[0].public_key"
        )
        assert "not a base64 Ed25519 public key" in issue.problem
        assert "drctl keys generate" in issue.fix

    def test_two_requesters_with_one_key(self) -> None:
        """Two requester names sharing a key are refused on the second one."""
        requesters = [{"name": "dave", "public_key": ALICE_KEY}, {"name": "erin", "public_key": ALICE_KEY}]
        issue = the_issue(issues(set_key("requesters", value=requesters)), "requesters[1].public_key")
        assert "requester 'erin' has the same key as 'dave'" in issue.problem
        assert "drctl keys generate erin" in issue.fix

    def test_requester_with_an_approvers_key(self) -> None:
        """A requester holding an approver's key would let that approver request under another name and then
        approve, so it is refused naming the approver."""
        bob = next(a["public_key"] for a in LOCAL_RAW["approvers"] if a["name"] == "bob")
        issue = the_issue(
            issues(set_key("requesters", value=[{"name": "dave", "public_key": bob}])), "requesters[0].public_key"
        )
        assert "requester 'dave' has the same key as approver 'bob'" in issue.problem
        assert "could then request a restore as 'dave' and approve it" in issue.problem
        assert "drctl keys generate dave" in issue.fix

    def test_valid_requesters_load_and_are_optional(self) -> None:
        """Requesters with keys of their own load; a plan without [[requesters]] has none."""
        requesters = [{"name": "dave", "public_key": ALICE_KEY}, {"name": "erin", "public_key": BOB_KEY}]
        plan = parse_plan(local_raw(set_key("requesters", value=requesters), inline_tenants=True), base_dir=PLANS)
        assert [r.name for r in plan.requesters] == ["dave", "erin"]
        assert plan.requester("erin") is not None
        without = parse_plan(local_raw(delete_key("requesters"), inline_tenants=True), base_dir=PLANS)
        assert without.requesters == ()


class TestFailback:
    def test_steps_must_increase(self) -> None:
        """Traffic steps that go down are refused with an example schedule."""
        issue = the_issue(issues(set_key("failback", "steps", value=[10, 50, 25, 100])), "failback.steps")
        assert "strictly increase" in issue.problem
        assert "10,25,50,75,100" in issue.fix

    def test_steps_over_100_percent(self) -> None:
        """A step above 100 % is refused."""
        found = issues(set_key("failback", "steps", value=[10, 50, 150]))
        problems = [i for i in found if i.field == "failback.steps"]
        assert any("between 1 and 100" in i.problem and "10,25,50,75,100" in i.fix for i in problems)

    def test_soak_shorter_than_interval(self) -> None:
        """A soak shorter than one sampling interval would never sample, so it is refused on soak_seconds."""
        found = issues(set_key("failback", "soak_seconds", value=30), set_key("failback", "interval_seconds", value=60))
        issue = the_issue(found, "failback.soak_seconds")
        assert "shorter than the sampling interval" in issue.problem
        assert "at least one interval long" in issue.fix


class TestBackup:
    def test_shipped_plans_name_their_backup_settings(self) -> None:
        """Both shipped plans carry a [backup] table; the Azure one resolves its signing key path."""
        local = load_plan(PLANS / "local.toml").backup
        azure = load_plan(PLANS / "example-azure.toml").backup
        assert (local.backup_container, local.retention_days, local.signing_key) == ("dr-backups", 35, "")
        assert azure.account_url == "https://stcontosodr.blob.core.windows.net"
        assert azure.signing_key == "/etc/dr-orchestrator/backup-signing.key"
        assert azure.policy_version == "3.1.0"

    def test_missing_table_takes_defaults(self) -> None:
        """A plan without [backup] loads with the default containers and retention."""
        plan = parse_plan(local_raw(delete_key("backup"), inline_tenants=True), base_dir=PLANS)
        assert plan.backup.live_container("T1") == "tenant-t1"
        assert plan.backup.retention_days == 35

    def test_relative_signing_key_is_taken_from_the_plan_folder(self) -> None:
        """A relative signing_key path is resolved against the plan file's folder."""
        plan = parse_plan(local_raw(set_key("backup", "signing_key", value="keys/sign.key")), base_dir=PLANS)
        assert plan.backup.signing_key == str(PLANS / "keys" / "sign.key")

    @pytest.mark.parametrize("name", ["DR-Backups", "dr--backups", "-dr", "ab", "x" * 64])
    def test_invalid_backup_container(self, name: str) -> None:
        """A backup container name Azure would reject is refused with the naming rule."""
        issue = the_issue(issues(set_key("backup", "backup_container", value=name)), "backup.backup_container")
        assert f"{name!r} is not a valid container name" in issue.problem
        assert "lowercase letters, digits and single hyphens" in issue.fix

    def test_live_prefix_that_makes_invalid_tenant_containers(self) -> None:
        """A live container prefix is checked against every tenant: invalid names list the tenants."""

        def odd_tenant(raw: dict[str, Any]) -> None:
            raw["tenants"].append({"id": "t_3", "home_region": "eastus", "residency": "us"})

        issue = the_issue(issues(odd_tenant), "backup.live_container_prefix")
        assert "invalid container names for tenant(s) t_3" in issue.problem
        assert "<prefix><tenant id>" in issue.fix

    def test_quarantine_prefix_must_differ_from_the_live_prefix(self) -> None:
        """A quarantine prefix equal to the live prefix is refused: a restore could clobber a tenant's container."""
        found = issues(set_key("backup", "quarantine_container_prefix", value="tenant-"))
        issue = the_issue(found, "backup.quarantine_container_prefix")
        assert "equals live_container_prefix" in issue.problem

    @pytest.mark.parametrize("days", [0, -3, "35", 1.5])
    def test_retention_days_must_be_a_positive_whole_number(self, days: Any) -> None:
        """retention_days below 1 or not a whole number is refused on its field."""
        issue = the_issue(issues(set_key("backup", "retention_days", value=days)), "backup.retention_days")
        assert "retention_days" in issue.fix

    @pytest.mark.parametrize(
        "url", ["postgresql://dr:pw@db.example:5432/catalog", "postgres://dr@db/catalog", "sqlite:///c.db"]
    )
    def test_postgresql_and_sqlite_catalogs_are_accepted(self, url: str) -> None:
        """A PostgreSQL (either scheme) or SQLite catalog URL is kept as written."""
        plan = parse_plan(local_raw(set_key("backup", "catalog_url", value=url)), base_dir=PLANS)
        assert plan.backup.catalog_url == url

    def test_other_catalog_schemes_are_refused_without_showing_a_password(self) -> None:
        """Another scheme is refused on catalog_url, naming both forms to use and hiding the URL's password."""
        found = issues(set_key("backup", "catalog_url", value="mysql://dr:hunter2@db/catalog"))
        issue = the_issue(found, "backup.catalog_url")
        assert "unsupported catalog URL 'mysql://...'" in issue.problem
        assert "hunter2" not in str(issue)
        assert "sqlite:///" in issue.fix
        assert "postgresql://" in issue.fix

    def test_trusted_keys_must_be_ed25519_public_keys(self) -> None:
        """A malformed earlier signing key is refused on its list position; valid ones are kept."""
        found = issues(set_key("backup", "trusted_keys", value=[ALICE_KEY, "c2hvcnQ="]))
        issue = the_issue(found, "backup.trusted_keys[1]")
        assert "not a base64 Ed25519 public key" in issue.problem
        plan = parse_plan(local_raw(set_key("backup", "trusted_keys", value=[ALICE_KEY])), base_dir=PLANS)
        assert plan.backup.trusted_keys == (ALICE_KEY,)

    def test_account_url_must_be_https(self) -> None:
        """A plain-http storage account URL is refused: the worker's token must not travel in clear text."""
        found = issues(set_key("backup", "account_url", value="http://stx.blob.core.windows.net"))
        issue = the_issue(found, "backup.account_url")
        assert "is not an https URL" in issue.problem
        assert "DR_BLOB_ENDPOINT" in issue.fix


class TestTargets:
    def test_targets_default_to_the_guides_table(self) -> None:
        """Without [targets] a production enterprise plan has RPO 5 min and RTO 30 min; tenants follow their edition."""
        plan = parse_plan(local_raw(inline_tenants=True), source="local.toml", base_dir=PLANS)
        assert (plan.rpo_target_seconds, plan.rto_target_seconds) == (300, 1800)
        assert [plan.tenant_rpo_seconds(t) for t in plan.tenants] == [300, 24 * 3600]

    def test_environment_sets_the_default(self) -> None:
        """A staging plan's targets are one hour each, whatever its edition."""
        plan = parse_plan(local_raw(set_key("plan", "environment", value="staging")), base_dir=PLANS)
        assert (plan.rpo_target_seconds, plan.rto_target_seconds) == (3600, 3600)

    def test_explicit_targets_win_for_the_plan_and_every_tenant(self) -> None:
        """[targets] rpo_seconds/rto_seconds replace the table's values, for every tenant too."""
        plan = parse_plan(
            local_raw(set_key("targets", value={"rpo_seconds": 120, "rto_seconds": 900}), inline_tenants=True),
            base_dir=PLANS,
        )
        assert (plan.rpo_target_seconds, plan.rto_target_seconds) == (120, 900)
        assert {plan.tenant_rpo_seconds(t) for t in plan.tenants} == {120}

    def test_bad_targets_name_the_field_and_the_fix(self) -> None:
        """A non-integer, a zero and an unknown key in [targets] are each reported with a fix."""
        wrong = {"rpo_seconds": "5m", "rto_seconds": 0, "rpo_secs": 5, "rpo_minutes": 5}
        found = issues(set_key("targets", value=wrong))
        assert "expected whole seconds, found '5m'" in the_issue(found, "targets.rpo_seconds").problem
        assert the_issue(found, "targets.rto_seconds").fix == "set rto_seconds >= 1"
        assert the_issue(found, "targets.rpo_secs").fix == "did you mean rpo_seconds?"
        assert the_issue(found, "targets.rpo_minutes").fix == "use rpo_seconds or rto_seconds (whole seconds)"


class TestQuarantineNames:
    def test_plain_restore_id_keeps_its_name(self) -> None:
        """A restore id that already is a valid name suffix is used as it is."""
        spec = load_plan(PLANS / "local.toml").backup
        assert spec.quarantine_container("restore-t0001-globex-r1") == "dr-quarantine-restore-t0001-globex-r1"

    @pytest.mark.parametrize("restore_id", ["Restore_T1/R2", "restore-" + "x" * 80, "--"])
    def test_any_restore_id_gives_a_stable_valid_name(self, restore_id: str) -> None:
        """Odd or long restore ids give a valid container name, the same one every time."""
        spec = load_plan(PLANS / "local.toml").backup
        name = spec.quarantine_container(restore_id)
        assert is_container_name(name), name
        assert name == spec.quarantine_container(restore_id)

    def test_ids_that_clean_to_the_same_text_get_different_names(self) -> None:
        """Two restore ids that differ only in characters a container name cannot hold do not collide."""
        spec = load_plan(PLANS / "local.toml").backup
        assert spec.quarantine_container("r_1") != spec.quarantine_container("r-1")


class TestStructure:
    def test_ops_endpoint_must_be_https(self) -> None:
        """A plain-http ops endpoint is refused: tokens must not travel in clear text."""
        found = issues(set_key("platform", "endpoints", "eastus", value="http://ops.example/ops"))
        issue = the_issue(found, "platform.endpoints.eastus")
        assert "is not an https URL" in issue.problem
        assert "use https://host/ops" in issue.fix

    @pytest.mark.parametrize("table", ["frontdoor", "servicebus", "cosmos", "platform", "residency"])
    def test_missing_table(self, table: str) -> None:
        """A required table that is absent is named with the header to add."""
        issue = the_issue(issues(delete_key(table)), table)
        assert issue.problem == "missing table"
        assert f"add a [{table}] table" in issue.fix

    def test_missing_failover_groups(self) -> None:
        """A plan without SQL failover groups is told to add one."""
        issue = the_issue(issues(set_key("sql", value={})), "sql.failover_groups")
        assert "add at least one [[sql.failover_groups]]" in issue.fix

    def test_several_problems_are_reported_together(self) -> None:
        """Independent problems in different sections all appear in one error, each on its field."""
        found = issues(
            set_key("plan", "dr_region", value="westuss"),
            set_key("platform", "endpoints", "eastus", value="http://ops.example/ops"),
            set_key("failback", "steps", value=[50, 25, 100]),
            set_key("tenants", 1, "residency", value="eu"),
        )
        fields = {i.field for i in found}
        assert {"plan.dr_region", "platform.endpoints.eastus", "failback.steps", "tenants[1].residency"} <= fields

    def test_error_message_lists_every_issue_with_its_fix(self) -> None:
        """PlanError's message has one "field: problem (fix: ...)" line per issue."""
        with pytest.raises(PlanError) as refused:
            parse_plan(local_raw(set_key("plan", "dr_region", value="eastus"), inline_tenants=True), source="p.toml")
        text = str(refused.value)
        assert text.startswith("invalid plan p.toml:")
        assert "plan.dr_region: DR region equals the primary region (eastus) (fix: choose a different region)" in text


class TestFiles:
    def test_invalid_toml(self, tmp_path: Path) -> None:
        """A syntax error is reported on the file with the parser's position."""
        path = tmp_path / "broken.toml"
        path.write_text('[plan]\nname = "x\n', encoding="utf-8")
        with pytest.raises(PlanError) as refused:
            load_plan(path)
        issue = the_issue(refused.value.issues, "file")
        assert "not valid TOML" in issue.problem
        assert "line 2" in issue.problem
        assert issue.fix == "fix the syntax"

    def test_file_not_found(self, tmp_path: Path) -> None:
        """A missing plan file is one clear problem, not a traceback."""
        with pytest.raises(PlanError) as refused:
            load_plan(tmp_path / "absent.toml")
        issue = the_issue(refused.value.issues, "file")
        assert issue.problem == "not found"
        assert "pass the path of a plan .toml" in issue.fix


class TestPlanCheckCommand:
    def test_valid_plan_prints_a_summary(self) -> None:
        """`drctl plan check --offline` on a valid plan exits 0 and summarises regions, tenants and approvers."""
        result = CliRunner().invoke(
            app, ["plan", "check", str(PLANS / "example-azure.toml"), "--offline"], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, result.output
        assert "plan contoso-prod" in result.stdout
        for text in ("eastus2", "centralus", "afd-contoso-prod", "eastus2-only", "alice", "Tenants (3)"):
            assert text in result.stdout

    def test_invalid_plan_prints_each_issue_and_exits_2(self, tmp_path: Path) -> None:
        """`drctl plan check` on a bad plan prints every "field: problem (fix: ...)" line and exits 2."""
        path = tmp_path / "bad.toml"
        text = (PLANS / "local.toml").read_text(encoding="utf-8")
        text = text.replace('dr_region = "westus"', 'dr_region = "westuss"').replace(
            'tenants_file = "local-tenants.csv"', ""
        )
        path.write_text(text.replace("https://127.0.0.1:8443/regions/eastus", "http://x/ops"), encoding="utf-8")
        result = CliRunner().invoke(app, ["plan", "check", str(path)])
        assert result.exit_code == 2
        assert "plan.dr_region: unknown Azure region 'westuss' (fix: did you mean \"westus\"?)" in result.stderr
        assert "platform.endpoints.eastus: 'http://x/ops' is not an https URL (fix:" in result.stderr
        assert "Traceback" not in result.output
