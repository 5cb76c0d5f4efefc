"""The Prometheus rules: valid (`promtool check rules`), unit-tested (`promtool test rules`), and
every alert has a firing case, a silent case and a runbook section in docs/operations.md.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it); without it these
tests fail rather than skip, so a CI machine that lacks it cannot pass unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "infra" / "monitoring" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool not found: `apt-get install prometheus` (.ci/run does it)")
    return subprocess.run(
        [executable, *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=RULES_DIR,
    )


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def alert_cases() -> list[tuple[str, bool]]:
    """(alertname, expected to fire) for every alert_rule_test case of every test file."""
    return [
        (case["alertname"], bool(case.get("exp_alerts")))
        for path in RULE_TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_rule_files_are_valid() -> None:
    completed = promtool("check", "rules", *(path.name for path in RULE_FILES))

    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("test_file", RULE_TEST_FILES, ids=lambda path: path.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    completed = promtool("test", "rules", str(test_file))

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: an expectation that an alert stays silent when it fires."""
    broken = yaml.safe_load((RULES_DIR / "tests" / "dependencies.test.yml").read_text())
    broken["rule_files"] = [str(RULES_DIR / "alerts.rules.yml")]
    for test in broken["tests"]:
        for case in test.get("alert_rule_test", []):
            case["exp_alerts"] = []
    test_file = tmp_path / "broken.test.yml"
    test_file.write_text(yaml.safe_dump(broken))

    completed = promtool("test", "rules", str(test_file))

    assert completed.returncode != 0
    assert "DependencyDown" in completed.stdout + completed.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = set(alert_cases())
    for rule in alert_rules():
        assert (rule["alert"], True) in cases, f"{rule['alert']}: no case where it fires"
        assert (rule["alert"], False) in cases, f"{rule['alert']}: no case where it stays silent"


def test_every_alert_links_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_DOC.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        runbook = rule["annotations"]["runbook"]
        document, _, anchor = runbook.partition("#")
        assert document == "docs/operations.md", rule["alert"]
        assert anchor in headings, f"{rule['alert']}: no section #{anchor} in docs/operations.md"
        assert {"severity"} <= set(rule["labels"]), rule["alert"]
