"""Drill pieces without Temporal: the plan's [drill] table, the report's verdict text and Markdown, the
signed stored report, and the pass rate over stored drills."""

from __future__ import annotations

import copy
import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from activities.drill import pass_rate, read_report, signed_report
from activities.integrity import generate_private_key, key_id_of, public_key_b64
from domain.errors import PlanError, PlanIssue
from domain.messages.drill import (
    STATUS_FAILED,
    STATUS_PASSED,
    STATUS_SKIPPED,
    DrillPhase,
    DrillReport,
    report_markdown,
    target_reasons,
)
from domain.plan import Blackout, load_plan, parse_plan
from starters import drill_cmd

PLANS = Path(__file__).resolve().parents[2] / "plans"
LOCAL_RAW: dict[str, Any] = tomllib.loads((PLANS / "local.toml").read_text(encoding="utf-8"))


def drill_issues(drill: dict[str, Any]) -> list[PlanIssue]:
    """The problems parse_plan reports for local.toml with ``drill`` as its [drill] table."""
    raw = copy.deepcopy(LOCAL_RAW) | {"drill": drill}
    with pytest.raises(PlanError) as refused:
        parse_plan(raw, source="edited.toml", base_dir=PLANS)
    return refused.value.issues


def a_report(**fields: Any) -> DrillReport:
    values: dict[str, Any] = {
        "workflow_id": "drill-local-20261206T020000",
        "plan": "local",
        "estate": "local-drill",
        "status": STATUS_PASSED,
        "scheduled": True,
        "requested_by": "schedule",
        "started_at": "2026-12-06T02:00:00Z",
        "finished_at": "2026-12-06T02:12:00Z",
        "duration_seconds": 720.0,
        "environment": "production",
        "edition": "enterprise",
        "rto_target_seconds": 1800,
        "rpo_target_seconds": 300,
        "rto_actual_seconds": 412.5,
        "rpo_actual_seconds": 0.0,
        "tenants": ["d003-initech"],
        "phases": [DrillPhase("failover", "Failover of local-drill", "done", duration_seconds=412.5)],
    }
    return DrillReport(**(values | fields))


class TestDrillPlan:
    def test_local_plan_names_its_drill_estate_and_blackout(self) -> None:
        """plans/local.toml names local-drill, the monthly calendar and a year-end blackout in UTC."""
        plan = load_plan(PLANS / "local.toml")
        assert plan.drill is not None
        assert (plan.drill.estate, plan.drill.calendar, plan.drill.sample_tenants) == (
            "local-drill",
            "first sunday 02:00 UTC",
            1,
        )
        (freeze,) = plan.drill.blackouts
        assert (freeze.start, freeze.end) == ("2026-12-18T00:00:00Z", "2027-01-04T00:00:00Z")
        assert load_plan(PLANS / "local-drill.toml").drill is None

    def test_drill_estate_has_its_own_regions_resources_and_containers(self) -> None:
        """The drill estate shares no region, subscription, resource or container name with the local estate."""
        local, drill = load_plan(PLANS / "local.toml"), load_plan(PLANS / "local-drill.toml")
        assert drill.environment != "production"
        assert set(local.regions).isdisjoint(drill.regions)
        assert local.subscription_id != drill.subscription_id
        assert {local.frontdoor.profile, local.servicebus.alias, local.cosmos.account}.isdisjoint(
            {drill.frontdoor.profile, drill.servicebus.alias, drill.cosmos.account}
        )
        assert {g.name for g in local.sql.failover_groups}.isdisjoint(g.name for g in drill.sql.failover_groups)
        assert {t.id for t in local.tenants}.isdisjoint(t.id for t in drill.tenants)
        assert local.backup.backup_container != drill.backup.backup_container
        assert local.backup.live_container_prefix != drill.backup.live_container_prefix

    def test_blackout_offsets_are_normalised_to_utc(self) -> None:
        """A blackout with an offset (TOML date-time or string) is kept in UTC; start inclusive, end exclusive."""
        raw = copy.deepcopy(LOCAL_RAW)
        raw["drill"]["blackouts"] = [
            {"start": "2026-07-01T02:00:00+02:00", "end": dt.datetime(2026, 7, 2, tzinfo=dt.UTC), "reason": "peak"}
        ]
        plan = parse_plan(raw, source="edited.toml", base_dir=PLANS)
        assert plan.drill is not None
        (window,) = plan.drill.blackouts
        assert window == Blackout("2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z", "peak")
        assert window.contains(dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
        assert not window.contains(dt.datetime(2026, 7, 2, tzinfo=dt.UTC))
        assert plan.drill.blackout_at(dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)) == window

    @pytest.mark.parametrize(
        ("drill", "field", "words"),
        [
            ({"estate": "local"}, "drill.estate", "names this plan"),
            ({"calendar": "first sunday 02:00 UTC"}, "drill.estate", "missing"),
            ({"estate": "local-drill", "sample_tenants": 0}, "drill.sample_tenants", "at least 1"),
            ({"estate": "local-drill", "estat": "x"}, "drill.estat", "unknown field"),
            (
                {"estate": "d", "blackouts": [{"start": "2026-12-20T00:00:00", "end": "2027-01-02T00:00:00Z"}]},
                "drill.blackouts[0].start",
                "no timezone",
            ),
            (
                {"estate": "d", "blackouts": [{"start": "2027-01-02T00:00:00Z", "end": "2026-12-20T00:00:00Z"}]},
                "drill.blackouts[0].end",
                "before it starts",
            ),
        ],
    )
    def test_invalid_drill_table_names_the_field(self, drill: dict[str, Any], field: str, words: str) -> None:
        """Each mistake in [drill] is reported against its field with a fix."""
        found = [i for i in drill_issues(drill) if i.field == field]
        assert len(found) == 1, [str(i) for i in drill_issues(drill)]
        assert words in found[0].problem
        assert found[0].fix


class TestReportText:
    def test_target_reasons_name_actual_and_target(self) -> None:
        """Missed targets read "RTO 2400 s exceeds the target 1800 s"; met ones give no reason."""
        assert target_reasons(2400.0, 0.0, 1800, 300) == ["RTO 2400 s exceeds the target 1800 s"]
        assert target_reasons(12.5, 301.0, 1800, 300) == ["RPO 301 s exceeds the target 300 s"]
        assert target_reasons(1800.0, 300.0, 1800, 300) == []
        assert "RTO not measured" in target_reasons(None, 0.0, 1800, 300)[0]

    def test_markdown_shows_verdict_measures_phases_and_reasons(self) -> None:
        """The Markdown report has the verdict, RTO and RPO against targets, the phases and the reasons."""
        text = report_markdown(
            a_report(status=STATUS_FAILED, rto_actual_seconds=2400.0, reasons=["RTO 2400 s exceeds the target 1800 s"])
        )
        assert text.startswith("# DR drill drill-local-20261206T020000: FAILED\n")
        assert "| RTO | 2400 s | 1800 s | **no** |" in text
        assert "| RPO | 0 s | 300 s | yes |" in text
        assert "| Failover of local-drill | done |" in text
        assert "## Reasons\n\n- RTO 2400 s exceeds the target 1800 s" in text


class TestStoredReport:
    def test_signed_report_reads_back_and_verifies(self) -> None:
        """A stored report reads back equal, signed by the orchestrator's key."""
        key = generate_private_key()
        public = public_key_b64(key)
        report = a_report(findings=["the failover used 23% of the 1800 s RTO budget"])
        read, problem = read_report(signed_report(report, key), {key_id_of(public): public})
        assert problem is None
        assert read == report

    def test_edited_or_foreign_report_fails_verification(self) -> None:
        """A report whose verdict was edited, or signed by an unknown key, does not verify."""
        key = generate_private_key()
        public = public_key_b64(key)
        trusted = {key_id_of(public): public}
        document = json.loads(signed_report(a_report(status=STATUS_FAILED), key))
        document["report"]["status"] = STATUS_PASSED
        read, problem = read_report(json.dumps(document).encode(), trusted)
        assert read.status == STATUS_PASSED
        assert problem is not None
        _, foreign = read_report(signed_report(a_report(), generate_private_key()), trusted)
        assert foreign is not None


class TestPassRate:
    def test_pass_rate_counts_the_newest_drills_that_ran(self) -> None:
        """The pass rate is the passed share of the newest ten drills that ran; skipped drills do not count."""
        old_failures = [a_report(status=STATUS_FAILED, finished_at=f"2026-01-{d:02d}T00:00:00Z") for d in range(1, 6)]
        recent = [
            a_report(status=STATUS_PASSED if m != 3 else STATUS_FAILED, finished_at=f"2026-{m:02d}-15T00:00:00Z")
            for m in range(2, 12)
        ]
        skipped = [a_report(status=STATUS_SKIPPED, finished_at="2026-12-20T00:00:00Z")]
        assert pass_rate([*old_failures, *recent, *skipped]) == (0.9, 10)
        assert pass_rate(skipped) == (None, 0)


class TestDrillCommand:
    def test_schedule_refuses_a_plan_without_a_drill_table(self, tmp_path: Path) -> None:
        """`drctl drill schedule` on a plan with no [drill] table exits 2 and says how to add one."""
        text = (PLANS / "local-drill.toml").read_text(encoding="utf-8")
        (tmp_path / "plan.toml").write_text(text, encoding="utf-8")
        (tmp_path / "local-drill-tenants.csv").write_bytes((PLANS / "local-drill-tenants.csv").read_bytes())
        result = CliRunner().invoke(drill_cmd.app, ["schedule", "--plan", str(tmp_path / "plan.toml")])
        assert result.exit_code == 2
        assert "has no [drill] table" in result.output

    def test_schedule_refuses_an_unknown_calendar(self) -> None:
        """`drctl drill schedule --calendar` with a phrase it does not know exits 2 naming what is accepted."""
        result = CliRunner().invoke(
            drill_cmd.app, ["schedule", "--plan", str(PLANS / "local.toml"), "--calendar", "every full moon"]
        )
        assert result.exit_code == 2
        assert "cron string" in result.output

    def test_report_needs_an_id_or_a_plan(self) -> None:
        """`drctl drill report` without a workflow id or --plan exits 2."""
        result = CliRunner().invoke(drill_cmd.app, ["report"])
        assert result.exit_code == 2

    def test_report_view_shows_verdict_measures_and_signature(self) -> None:
        """The report view shows the verdict, RTO and RPO against their targets and the signature's state."""
        out = Console(record=True, width=200)
        out.print(drill_cmd.report_view(drill_cmd.StoredReport(a_report(), "dr-backups/drills/x.json", None)))
        text = out.export_text()
        assert "DR drill of plan local  PASSED" in text
        assert "412 s (target 1800 s)" in text
        assert "0 s (target 300 s)" in text
        assert "verified" in text
        assert drill_cmd.exit_code(a_report(status=STATUS_FAILED)) == 1
        assert drill_cmd.exit_code(a_report(status=STATUS_SKIPPED)) == 0
