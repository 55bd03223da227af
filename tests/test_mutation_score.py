"""scripts/mutation_score.py: mutmut's results counted per module, and its exit status."""

from __future__ import annotations

import importlib.util
import json

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location(
    "mutation_score", REPO / "scripts" / "mutation_score.py"
)
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)

RESULTS = """\
    syncd.plan.x_plan__mutmut_1: killed
    syncd.plan.x_plan__mutmut_2: survived
    syncd.api.retry.x\u01c1RetryPolicy\u01c1backoff__mutmut_8: timeout
    syncd.api.retry.x_parse_retry_after__mutmut_3: no tests
Some other line mutmut printed
"""


def test_results_lines_are_counted_per_module_and_timeouts_are_kills():
    per_module = score.tally(score.from_results(RESULTS.splitlines()))
    assert {m: dict(c) for m, c in per_module.items()} == {
        "syncd.plan": {"killed": 1, "survived": 1},
        "syncd.api.retry": {"timeout": 1, "no tests": 1},
    }
    lines, total = score.report(per_module)
    assert total == 50.0
    assert lines[1].split()[:4] == ["syncd.plan", "1", "2", "50.0%"]
    assert lines[-1].split()[:4] == ["total", "2", "4", "50.0%"]


def test_meta_files_give_the_same_statuses_and_the_minimum_sets_the_exit_code(tmp_path, capsys):
    meta = tmp_path / "mutants" / "syncd" / "plan.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {f"syncd.plan.x_plan__mutmut_{n}": 1 for n in range(1, 10)}
    codes["syncd.plan.x_plan__mutmut_10"] = 0
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    folder = str(tmp_path / "mutants")
    assert score.main(["--mutants", folder]) == 0
    assert "syncd.plan                   9     10   90.0%  1 survived" in capsys.readouterr().out
    assert score.main(["--mutants", folder, "--min", "95"]) == 1
    assert score.main(["--mutants", str(tmp_path / "none")]) == 2
