"""The Prometheus alert rules (deploy/prometheus): promtool accepts them and their unit tests pass,
and every metric and label value they use is one the worker really exports."""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from workers.main import make_runtime

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts-dr.yml"
RULE_TESTS = RULES_DIR / "alerts-dr.test.yml"
README = RULES_DIR / "README.md"
LOCAL_PROMTOOL = ROOT / "tools" / "promtool" / "promtool"
# Where metrics are emitted (workflow and activity meters, and the worker's own runtime meter) and
# where their names and label values may be kept as module constants.
EMITTERS = ("workflows", "activities", "workers")
CONSTANT_SOURCES = (*EMITTERS, "domain")

# Metrics the rules use that no code emits yet: tick each off (delete it here) once it is emitted.
# name -> "counter" | "gauge" | "histogram"; every metric the rules use is emitted today.
PENDING: dict[str, str] = {}

# Label values the rules match on, as the code names them (qualified module constants, or literals
# where the code writes a literal).
LABEL_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("backup_runs_total", "result"): ("workflows.backup.RESULT_SUCCESS", "workflows.backup.RESULT_FAILED"),
    ("restore_duration_seconds", "mode"): (
        "domain.messages.restore.MODE_SANDBOX",
        "domain.messages.restore.MODE_PRODUCTION",
    ),
    ("restore_duration_seconds", "outcome"): (
        "domain.messages.restore.OUTCOME_PROMOTED",
        "domain.messages.restore.OUTCOME_SANDBOX",
        "domain.messages.restore.OUTCOME_REJECTED",
        "domain.messages.restore.OUTCOME_TIMED_OUT",
        '"failed"',  # TenantRestoreWorkflow._finish after an error
        '"cancelled"',
    ),
    ("failover_rto_seconds", "drill"): ('"true"', '"false"'),  # str(inp.drill).lower()
}

METER_METHODS = {
    "create_counter": "counter",
    "create_histogram": "histogram",
    "create_histogram_float": "histogram",
    "create_histogram_timedelta": "histogram",
    "create_gauge": "gauge",
    "create_gauge_float": "gauge",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
INSTALL_HINT = (
    "promtool not found (neither tools/promtool/promtool nor promtool on PATH): run scripts/bootstrap.sh, "
    "which extracts it from Debian's prometheus package into tools/promtool, or `apt-get install prometheus`"
)


# ---- helpers -----------------------------------------------------------------------------------


def find_promtool() -> str | None:
    """The project-local promtool that scripts/bootstrap.sh installs, else one on PATH."""
    if LOCAL_PROMTOOL.is_file() and os.access(LOCAL_PROMTOOL, os.X_OK):
        return str(LOCAL_PROMTOOL)
    return shutil.which("promtool")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs promtool from the repository root; a missing promtool fails the test with how to install it."""
    promtool = find_promtool()
    if promtool is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    """Every rule of every group in alerts-dr.yml."""
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, aggregation
    operators, keywords, label names or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call is None and name not in PROMQL_KEYWORDS:
            names.add(name)
    return names


def label_matchers(expr: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) for every label matcher of a selector."""
    found = set()
    for selector in re.finditer(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
        for label, value in re.findall(r'(\w+)\s*(?:=|!=|=~|!~)\s*"([^"]*)"', selector.group(2)):
            found.add((selector.group(1), label, value))
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def python_files(folders: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def string_constants() -> dict[str, str]:
    """Module-level ``NAME = "text"`` constants, keyed both by bare and by qualified name."""
    constants: dict[str, str] = {}
    for path in python_files(CONSTANT_SOURCES):
        for node in ast.parse(path.read_text(), str(path)).body:
            target: ast.expr | None = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                constants[target.id] = value.value
                constants[f"{module_name(path)}.{target.id}"] = value.value
    return constants


def emitted_metrics() -> dict[str, str]:
    """name -> counter|histogram|gauge for every metric the code creates on a Temporal metric meter."""
    constants = string_constants()
    emitted: dict[str, str] = {}
    for path in python_files(EMITTERS):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            kind = METER_METHODS.get(node.func.attr)
            if kind is None or not node.args:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                name = constants[arg.id]
            else:
                pytest.fail(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.func.attr} with a metric name that is neither "
                    "a literal nor a module-level string constant; name metrics statically so rules can be checked"
                )
            emitted[name] = kind
    return emitted


def known_value(ref: str, constants: dict[str, str]) -> str:
    if ref.startswith('"'):
        return ref.strip('"')
    assert ref in constants, f"LABEL_VALUES names {ref}, which is not a module-level string constant"
    return constants[ref]


def resolve(name: str, known: dict[str, str]) -> tuple[str, str] | None:
    """(metric, type) behind a series name: histograms are only exported as _bucket, _sum and _count."""
    if name in known:
        return name, known[name]
    for suffix in HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and known.get(base) == "histogram":
            return base, "histogram"
    return None


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(url: str) -> str:
    """The exposition text, once the exporter answers (it starts with the runtime)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.get(url, timeout=2).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---- tests -------------------------------------------------------------------------------------


class TestPromtool:
    def test_rules_pass_promtool_check(self) -> None:
        """promtool check rules accepts alerts-dr.yml (syntax, PromQL, templates)."""
        done = run_promtool("check", "rules", str(RULES.relative_to(ROOT)))
        assert done.returncode == 0, f"promtool check rules failed:\n{done.stdout}\n{done.stderr}"
        assert f"SUCCESS: {len(rules())} rules found" in done.stdout

    def test_rules_pass_their_unit_tests(self) -> None:
        """promtool test rules runs alerts-dr.test.yml: every alert fires and stays quiet where it should."""
        done = run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
        assert done.returncode == 0, f"promtool test rules failed:\n{done.stdout}\n{done.stderr}"
        assert "SUCCESS" in done.stdout

    def test_every_alert_has_a_unit_test(self) -> None:
        """Each alert of the rules file is evaluated by at least one promtool unit test."""
        tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
        tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
        alerts = {rule["alert"] for rule in rules() if "alert" in rule}
        assert alerts - tested == set()


class TestRuleContents:
    def test_every_alert_has_for_severity_and_annotations(self) -> None:
        """Each alert states its pending time, a severity and a summary, description and runbook naming the plan."""
        for rule in rules():
            name = rule["alert"]
            assert "for" in rule, name
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            notes = rule["annotations"]
            assert "{{ $labels.plan }}" in notes["summary"], name
            assert "{{ $labels.plan }}" in notes["description"], name
            assert notes["runbook_url"].startswith("deploy/prometheus/README.md#"), name

    def test_runbook_links_point_at_readme_sections(self) -> None:
        """Every runbook_url anchor is a heading of deploy/prometheus/README.md."""
        headings = {github_anchor(line.lstrip("#")) for line in README.read_text().splitlines() if line.startswith("#")}
        for rule in rules():
            anchor = rule["annotations"]["runbook_url"].partition("#")[2]
            assert anchor in headings, f"{rule['alert']}: no README section for #{anchor}"


class TestMetricNames:
    def test_parser_finds_the_selected_metrics_only(self) -> None:
        """The PromQL scan keeps selected metric names and drops functions, keywords, labels and durations."""
        expr = (
            'sum by (plan) ((a_total{result="failed"} unless a_total offset 1h) or increase(a_total[1h])) '
            '> on (plan) group_left () 2 * max by (plan) (b_seconds) and histogram_quantile(0.95, c_bucket{le="1"})'
        )
        assert metric_names(expr) == {"a_total", "b_seconds", "c_bucket"}
        assert label_matchers(expr) == {("a_total", "result", "failed"), ("c_bucket", "le", "1")}

    def test_every_metric_in_the_rules_is_emitted_or_pending(self) -> None:
        """A rule names only metrics the code creates (with the matching type) or ones listed in PENDING."""
        emitted = emitted_metrics()
        known = {**emitted, **PENDING}
        used = {name for rule in rules() for name in metric_names(rule["expr"])}
        unknown = sorted(name for name in used if resolve(name, known) is None)
        assert unknown == [], (
            f"rules use metrics that nothing emits: {unknown}; emitted: {sorted(emitted)}; pending: {sorted(PENDING)}"
        )

    def test_pending_metrics_are_not_emitted_yet(self) -> None:
        """A metric listed in PENDING that the code now creates must be ticked off the list."""
        emitted = emitted_metrics()
        now_emitted = {name: emitted[name] for name in PENDING if name in emitted}
        assert now_emitted == {}, f"emitted now, remove from PENDING in {Path(__file__).name}: {now_emitted}"
        assert all(PENDING[name] in {"counter", "gauge", "histogram"} for name in PENDING)

    def test_label_values_in_the_rules_are_the_ones_the_code_sets(self) -> None:
        """Each label value a rule matches on is a value the emitting code really sets (e.g. result="failed")."""
        constants = string_constants()
        known = {**emitted_metrics(), **PENDING}
        for rule in rules():
            for series, label, value in label_matchers(rule["expr"]):
                resolved = resolve(series, known)
                assert resolved is not None, series
                key = (resolved[0], label)
                assert key in LABEL_VALUES, f"{rule['alert']}: add the values of {key} to LABEL_VALUES"
                allowed = {known_value(ref, constants) for ref in LABEL_VALUES[key]}
                assert value in allowed, f"{rule['alert']}: {series}{{{label}={value!r}}} but the code sets {allowed}"

    def test_readme_table_lists_every_metric_with_its_type(self) -> None:
        """deploy/prometheus/README.md documents each metric the rules use, with the type the code gives it."""
        table = dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", README.read_text(), re.MULTILINE))
        known = {**emitted_metrics(), **PENDING}
        for rule in rules():
            for name in metric_names(rule["expr"]):
                resolved = resolve(name, known)
                assert resolved is not None, name
                metric, kind = resolved
                assert table.get(metric) == kind, f"README metric table: {metric} should be listed as a {kind}"

    def test_worker_exports_metric_names_as_written(self) -> None:
        """dr-worker's Prometheus exporter keeps names as the code writes them: no _total or unit suffix
        added, histograms as _bucket/_sum/_count, which is what the rules select."""
        port = free_port()
        runtime = make_runtime(f"127.0.0.1:{port}")
        assert runtime is not None
        meter = runtime.metric_meter
        meter.create_counter("backup_runs_total", "runs").add(1, {"plan": "p", "result": "failed"})
        meter.create_histogram_float("restore_duration_seconds", "duration", "s").record(2000.0, {"plan": "p"})
        meter.create_gauge_float("failover_rto_seconds", "rto", "s").set(42.0, {"plan": "p", "drill": "false"})
        text = scrape(f"http://127.0.0.1:{port}/metrics")
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
        assert types == {
            "backup_runs_total": "counter",
            "restore_duration_seconds": "histogram",
            "failover_rto_seconds": "gauge",
        }
        samples = set(re.findall(r"^(\w+)\{", text, re.MULTILINE))
        assert samples == {
            "backup_runs_total",
            "restore_duration_seconds_bucket",
            "restore_duration_seconds_sum",
            "restore_duration_seconds_count",
            "failover_rto_seconds",
        }
        assert re.search(r'^backup_runs_total\{[^}]*result="failed"[^}]*\} 1$', text, re.MULTILINE)
