"""``drctl plan``: validate a plan file and summarise what it covers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from domain.errors import PlanError
from domain.plan import DrPlan, load_plan
from starters.output import fail_plan, show, table

app = typer.Typer(help="Validate DR plans.", no_args_is_help=True)


def load_or_exit(path: Path) -> DrPlan:
    """The plan at ``path``, or every problem in it printed and exit code 2."""
    try:
        return load_plan(path)
    except PlanError as error:
        fail_plan(error)


@app.command()
def check(path: Annotated[Path, typer.Argument(help="Plan file (.toml).")]) -> None:
    """Validate a plan; print its regions, resources, tenants and approvers, or every problem found."""
    plan = load_or_exit(path)
    typer.echo(f"plan {plan.name} ({path}) is valid")
    show(*summary(plan))


def summary(plan: DrPlan) -> list[object]:
    """The tables ``plan check`` prints."""
    overview = table(
        f"Plan {plan.name}",
        ["field", "value"],
        [
            ("environment", plan.environment),
            ("edition", plan.edition),
            ("subscription", plan.subscription_id),
            ("regions", f"{plan.primary_region} (primary) -> {plan.dr_region} (DR)"),
            ("allow data loss", f"{plan.failover.allow_data_loss} (after {plan.failover.data_loss_grace_minutes} min)"),
            ("failback steps", " / ".join(f"{s}%" for s in plan.failback.steps)),
        ],
    )
    fd, sb, cos = plan.frontdoor, plan.servicebus, plan.cosmos

    def per_region(names: dict[str, str]) -> str:
        return "\n".join(f"{region}: {names[region]}" for region in plan.regions if region in names)

    resource_rows: list[tuple[str, str, str]] = [
        ("Front Door origins", f"{fd.resource_group}/{fd.profile}/{fd.origin_group}", per_region(fd.origins)),
        ("Service Bus alias", f"{sb.resource_group}/{sb.alias}", per_region(sb.namespaces)),
    ]
    resource_rows.extend(
        (
            "SQL failover group",
            f"{group.resource_group}/{group.name}\ndatabases: {', '.join(group.databases)}",
            per_region(group.servers),
        )
        for group in plan.sql.failover_groups
    )
    resource_rows.append(
        ("Cosmos DB account", f"{cos.resource_group}/{cos.account}", "priority: " + " > ".join(cos.regions))
    )
    resource_rows.append(("Platform ops API", "", per_region(plan.platform.endpoints)))
    resources = table("Resources", ["kind", "resource group/name", "per region"], resource_rows)

    counts = Counter((t.home_region, t.residency) for t in plan.tenants)
    tenants = table(
        f"Tenants ({len(plan.tenants)})",
        ["home region", "residency", "allowed regions", "tenants"],
        [
            (home, policy, ", ".join(plan.residency.get(policy, ())), count)
            for (home, policy), count in sorted(counts.items())
        ],
    )
    approvers = table(
        f"Approvers ({plan.approvals_required} required)",
        ["name", "public key"],
        [(a.name, a.public_key) for a in plan.approvers] or [("(none)", "")],
    )
    return [overview, resources, tenants, approvers]
