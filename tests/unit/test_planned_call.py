"""The one-line form of a planned (or issued) mutating call, shared by every activity."""

from __future__ import annotations

import json

from azure.mgmt.cdn.models import AFDOriginUpdatePropertiesParameters

from activities.azure import PLANNED_LIST_ITEMS, planned_call


class TestPlannedCall:
    def test_arm_call_names_method_path_api_version_and_wire_body(self) -> None:
        """An SDK model body is written with its wire names, after the path and its api-version."""
        body = AFDOriginUpdatePropertiesParameters(enabled_state="Disabled", priority=2)
        line = planned_call("patch", "/subscriptions/s/origins/o", "2026-10-01", body)
        assert (
            line
            == 'PATCH /subscriptions/s/origins/o?api-version=2026-10-01 {"enabledState": "Disabled", "priority": 2}'
        )

    def test_call_without_body_or_api_version_is_method_and_url(self) -> None:
        """An ops URL without api-version or body is just the method and the URL."""
        assert planned_call("POST", "https://ops/regions/westus/ops/v1/x") == "POST https://ops/regions/westus/ops/v1/x"

    def test_long_lists_are_abridged_with_a_count(self) -> None:
        """A list longer than the limit keeps its first items and says how many more there were."""
        ids = [f"t{i:03}" for i in range(PLANNED_LIST_ITEMS + 5)]
        line = planned_call("POST", "/repin", body={"tenantIds": ids})
        body = json.loads(line.split(" ", 2)[2])
        assert body["tenantIds"] == [*ids[:PLANNED_LIST_ITEMS], "... 5 more"]
        assert "\n" not in line
