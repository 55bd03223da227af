"""The run summary, the exit code and outcome a run ends with, the progress line and what a
run prints."""

import io
import json

import pytest

from syncd.errors import AuthError, ConfigError
from syncd.summary import RunResult, Summary, report_run

KEYS = [
    "licenses_seen",
    "new_licenses",
    "downloaded",
    "already_present",
    "relicensed",
    "credits_spent",
    "credits_planned",
    "planned",
    "unavailable",
    "failed",
    "bytes_downloaded",
    "api_requests",
    "duration_s",
]


def test_the_summary_is_every_counter_in_contract_order_starting_at_zero():
    doc = Summary().as_json()
    assert list(doc) == KEYS
    assert set(doc.values()) == {0}
    assert Summary(downloaded=3, duration_s=1.5).as_json()["downloaded"] == 3


@pytest.mark.parametrize(
    "result, code, outcome",
    [
        (RunResult(), 0, "ok"),
        (RunResult(summary=Summary(failed=1)), 1, "failed"),
        (RunResult(stream_errors={"images": "bad page"}), 1, "failed"),
        (RunResult(refused={"videos": "403"}, stream_errors={"images": "x"}), 3, "refused"),
        (RunResult(fatal=AuthError("401"), refused={"videos": "403"}), 3, "refused"),
        (RunResult(fatal=ConfigError("api.token", "not set")), 2, "usage"),
        (RunResult(fatal=RuntimeError("boom")), 1, "failed"),
        (RunResult(fatal=RuntimeError("boom"), interrupted=True), 130, "interrupted"),
    ],
)
def test_exit_code_and_outcome(result, code, outcome):
    assert (result.exit_code, result.outcome) == (code, outcome)


@pytest.mark.parametrize(
    "code, outcome",
    [(4, "storage"), (5, "unreachable"), (75, "busy"), (9, "failed")],
)
def test_outcome_names_each_exit_code(code, outcome):
    class Fatal(Exception):
        exit_code = code

    assert RunResult(fatal=Fatal()).outcome == outcome


def test_report_prints_the_plan_and_the_json_summary_on_stdout_and_problems_on_stderr(capsys):
    result = RunResult(
        summary=Summary(planned=2, already_present=1, unavailable=3, failed=4, credits_planned=5),
        stream_errors={"images": "bad page"},
        refused={"videos": "HTTP 403"},
        fatal=RuntimeError("disk full"),
        interrupted=True,
        planned=["fetch images/1/huge.jpg"],
    )
    report_run(result, as_json=True, dry_run=True)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "fetch images/1/huge.jpg"
    assert lines[1] == (
        "plan: 2 to fetch, 1 already present, 3 unavailable, 4 would fail, 5 credits; "
        "dry run: nothing was fetched, recorded or moved"
    )
    assert json.loads(lines[2]) == result.summary.as_json()
    assert len(lines) == 3
    assert err.splitlines() == [
        "syncd: stream videos refused by the API: HTTP 403",
        "syncd: stream images failed: bad page",
        "syncd: disk full",
        "syncd: interrupted; what finished is kept",
    ]


def test_report_as_a_table_aligns_the_keys(capsys):
    report_run(RunResult(summary=Summary(downloaded=9)), as_json=False)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(KEYS) and err == ""
    assert lines[2] == "        downloaded: 9"
    assert lines[-1] == "        duration_s: 0.0"


class Stdout(io.StringIO):
    """Standard output that remembers what had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed = []

    def flush(self):
        self.flushed.append(self.getvalue())
        super().flush()


def test_the_json_summary_is_flushed_as_soon_as_it_is_printed(monkeypatch):
    stdout = Stdout()
    monkeypatch.setattr("sys.stdout", stdout)
    report_run(RunResult(), as_json=True)
    assert stdout.flushed == [json.dumps(Summary().as_json()) + "\n"]
