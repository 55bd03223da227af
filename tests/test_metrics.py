"""metrics.py: the metrics of CONTRACT section 6, /metrics and /healthz over real loopback HTTP,
the textfile for the node exporter, and the pure health verdict."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import MEDIA_TYPES
from syncd.errors import ConfigError
from syncd.metrics import (
    JOBS,
    OUTCOMES,
    JobHealth,
    Metrics,
    MetricsServer,
    deadline,
    evaluate_health,
    start_metrics_server,
)

MEDIA_COUNTERS = [
    "syncd_licenses_seen",
    "syncd_files_downloaded",
    "syncd_bytes_downloaded",
    "syncd_licenses_failed",
    "syncd_licenses_unavailable",
    "syncd_relicensed",
]
ALLOWED_LABELS = {"media_type", "code", "job", "outcome"}
HOUR = 3600.0
T0 = 1_700_000_000.0


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[name, tuple(sorted(labels.items()))]


@pytest.fixture
def server():
    metrics = Metrics()
    running = MetricsServer(("127.0.0.1", 0), metrics).start()
    yield metrics, f"http://127.0.0.1:{running.address[1]}"
    running.close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


# --- the metrics themselves -----------------------------------------------------------------


def test_every_contract_metric_is_present_at_zero_with_its_type_and_labels():
    found = families(Metrics().exposition().decode())
    for name in MEDIA_COUNTERS:
        family = found[name]
        assert family.type == "counter"
        assert {s.labels["media_type"]: s.value for s in family.samples} == dict.fromkeys(
            MEDIA_TYPES, 0.0
        )
        assert {s.name for s in family.samples} == {name + "_total"}
    assert found["syncd_credits_spent"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in found["syncd_credits_spent"].samples] == [
        ("syncd_credits_spent_total", {}, 0.0)
    ]
    runs = found["syncd_job_runs"]
    assert runs.type == "counter"
    assert {(s.labels["job"], s.labels["outcome"]) for s in runs.samples} == {
        (job, outcome) for job in JOBS for outcome in OUTCOMES
    }
    assert all(s.value == 0 for s in runs.samples)
    for name in ("syncd_job_last_success_timestamp_seconds", "syncd_job_duration_seconds"):
        assert found[name].type == "gauge"
        assert {s.labels["job"]: s.value for s in found[name].samples} == dict.fromkeys(JOBS, 0.0)
    assert found["syncd_api_requests"].type == "counter"
    assert set(JOBS) == {"catch_up", "updates", "verify", "backfill"}


def test_exposition_has_no_created_series():
    assert "_created" not in Metrics().exposition().decode()


def test_no_label_carries_an_id():
    metrics = Metrics()
    metrics.record_api_request(200)
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample


def test_metrics_live_in_their_own_registry_not_the_global_one():
    first, second = Metrics(), Metrics()
    first.record_api_request(200)
    assert REGISTRY.get_sample_value("syncd_api_requests_total", {"code": "200"}) is None
    assert "syncd_api_requests_total{" not in second.exposition().decode()
    assert value(first.exposition().decode(), "syncd_api_requests_total", code="200") == 1


def test_api_request_codes_are_created_as_they_come():
    metrics = Metrics()
    assert "syncd_api_requests_total{" not in metrics.exposition().decode()
    for status in (200, 200, 429, None, 503):
        metrics.record_api_request(status)
    text = metrics.exposition().decode()
    assert value(text, "syncd_api_requests_total", code="200") == 2
    assert value(text, "syncd_api_requests_total", code="429") == 1
    assert value(text, "syncd_api_requests_total", code="503") == 1
    assert value(text, "syncd_api_requests_total", code="error") == 1


@pytest.mark.parametrize("status", [99, 600, "200", True])
def test_api_request_with_no_http_status_is_refused(status):
    with pytest.raises(ValueError, match="not an HTTP status"):
        Metrics().record_api_request(status)


def test_record_run_adds_each_media_types_counts_and_the_credits():
    metrics = Metrics()
    summary = {"licenses_seen": 12, "downloaded": 9, "credits_spent": 3, "api_requests": 14}
    by_media = {
        "images": {
            "licenses_seen": 9,
            "downloaded": 7,
            "bytes_downloaded": 4000,
            "failed": 1,
            "unavailable": 1,
            "relicensed": 2,
            "already_present": 1,  # no metric: ignored
        },
        "editorial/images": {"licenses_seen": 3, "downloaded": 2, "unavailable": 1},
    }
    metrics.record_run(summary, by_media)
    metrics.record_run(summary, by_media)
    text = metrics.exposition().decode()
    assert value(text, "syncd_licenses_seen_total", media_type="images") == 18
    assert value(text, "syncd_licenses_seen_total", media_type="editorial/images") == 6
    assert value(text, "syncd_files_downloaded_total", media_type="images") == 14
    assert value(text, "syncd_bytes_downloaded_total", media_type="images") == 8000
    assert value(text, "syncd_licenses_failed_total", media_type="images") == 2
    assert value(text, "syncd_licenses_unavailable_total", media_type="editorial/images") == 2
    assert value(text, "syncd_relicensed_total", media_type="images") == 4
    assert value(text, "syncd_files_downloaded_total", media_type="videos") == 0
    assert value(text, "syncd_credits_spent_total") == 6
    # Requests are counted one by one (with their code), never from the summary.
    assert "syncd_api_requests_total{" not in text


def test_record_run_with_a_bad_count_changes_nothing():
    metrics = Metrics()
    with pytest.raises(ValueError, match="failed must be a count"):
        metrics.record_run({"credits_spent": 1}, {"images": {"licenses_seen": 2, "failed": -1}})
    with pytest.raises(ValueError, match="unknown media type"):
        metrics.record_run({}, {"image": {"licenses_seen": 2}})
    text = metrics.exposition().decode()
    assert value(text, "syncd_licenses_seen_total", media_type="images") == 0
    assert value(text, "syncd_credits_spent_total") == 0


def test_record_job_counts_runs_and_keeps_the_last_success_and_duration():
    metrics = Metrics()
    metrics.record_job("catch_up", "success", duration_s=12.5, finished_at=T0)
    metrics.record_job("catch_up", "failure", duration_s=3.0, finished_at=T0 + 900)
    metrics.record_job("catch_up", "skipped")
    text = metrics.exposition().decode()
    assert value(text, "syncd_job_runs_total", job="catch_up", outcome="success") == 1
    assert value(text, "syncd_job_runs_total", job="catch_up", outcome="failure") == 1
    assert value(text, "syncd_job_runs_total", job="catch_up", outcome="skipped") == 1
    assert value(text, "syncd_job_runs_total", job="verify", outcome="success") == 0
    assert value(text, "syncd_job_last_success_timestamp_seconds", job="catch_up") == T0
    assert value(text, "syncd_job_duration_seconds", job="catch_up") == 3.0
    assert value(text, "syncd_job_last_success_timestamp_seconds", job="verify") == 0


@pytest.mark.parametrize(("job", "outcome"), [("sync", "success"), ("verify", "ok")])
def test_unknown_job_or_outcome_is_refused(job, outcome):
    with pytest.raises(ValueError, match="unknown job"):
        Metrics().record_job(job, outcome)


def test_deadline_gauge_follows_schedule_and_success():
    metrics = Metrics()
    metrics.schedule_job("verify", period_s=86400, first_due=T0)
    assert value(
        metrics.exposition().decode(), "syncd_job_deadline_timestamp_seconds", job="verify"
    ) == (T0 + 2 * 86400)
    metrics.record_job("verify", "success", 5, finished_at=T0 + 100)
    text = metrics.exposition().decode()
    assert value(text, "syncd_job_deadline_timestamp_seconds", job="verify") == T0 + 100 + 172800
    assert value(text, "syncd_job_deadline_timestamp_seconds", job="updates") == 0
    metrics.record_job("verify", "failure", 5, finished_at=T0 + 5000)
    text = metrics.exposition().decode()
    # A failure moves neither the last success nor the deadline.
    assert value(text, "syncd_job_deadline_timestamp_seconds", job="verify") == T0 + 100 + 172800
    assert value(text, "syncd_job_last_success_timestamp_seconds", job="verify") == T0 + 100


# --- health, the pure verdict ---------------------------------------------------------------


def job(name="catch_up", period=HOUR, first_due=T0, outcome=None, success=None) -> JobHealth:
    return JobHealth(name, period, first_due, outcome, success)


def test_health_is_200_before_the_first_run_is_due():
    verdict = evaluate_health([job(first_due=T0 + 60)], now=T0)
    assert verdict.status == 200
    assert verdict.body == "ok: catch_up\n"


def test_health_is_200_while_a_due_first_run_is_within_twice_its_period():
    assert evaluate_health([job()], now=T0 + 2 * HOUR).status == 200


def test_health_is_503_when_the_first_success_is_later_than_twice_the_period():
    verdict = evaluate_health([job()], now=T0 + 2 * HOUR + 1)
    assert verdict.status == 503
    assert "catch_up: no success in 2h (twice its period is 2h)" in verdict.body


def test_health_is_200_after_a_recent_success():
    assert evaluate_health([job(outcome="success", success=T0 + 10)], now=T0 + HOUR).status == 200


def test_health_is_503_naming_a_job_whose_last_run_failed():
    verdict = evaluate_health(
        [job(outcome="failure", success=T0), job("verify", 86400, outcome="success", success=T0)],
        now=T0 + 60,
    )
    assert verdict.status == 503
    assert "catch_up: last run failed" in verdict.body
    assert "verify" not in verdict.body


def test_health_is_503_when_the_last_success_is_older_than_twice_the_period():
    verdict = evaluate_health(
        [job(outcome="success", success=T0), job("updates", outcome="success", success=T0 + HOUR)],
        now=T0 + 2 * HOUR + 30 * 60,
    )
    assert verdict.status == 503
    assert verdict.body.startswith("unhealthy\n")
    assert "catch_up: no success since in 2h30m" in verdict.body
    assert "updates" not in verdict.body


def test_health_names_every_failing_job():
    verdict = evaluate_health(
        [job("verify", outcome="failure"), job("backfill", first_due=T0 - 10 * HOUR)], now=T0
    )
    assert verdict.status == 503
    assert verdict.body.splitlines()[1:] == [
        "backfill: no success in 10h (twice its period is 2h)",
        "verify: last run failed",
    ]


def test_health_is_503_when_the_scheduler_is_not_running():
    verdict = evaluate_health([job(first_due=T0 + 60)], now=T0, running=False)
    assert verdict.status == 503
    assert "scheduler: not running" in verdict.body


def test_deadline_is_twice_the_period_after_last_success_or_first_due():
    assert deadline(job()) == T0 + 2 * HOUR
    assert deadline(job(success=T0 + 5)) == T0 + 5 + 2 * HOUR


def test_a_job_never_scheduled_is_not_judged():
    metrics = Metrics()
    metrics.record_job("backfill", "failure", 1, finished_at=T0)
    assert metrics.health(now=T0).status == 200


# --- over HTTP ------------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_exposition_over_loopback(server):
    metrics, base = server
    metrics.record_api_request(200)
    metrics.record_run({"credits_spent": 2}, {"videos": {"downloaded": 3}})
    status, content_type, body = get(base + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert value(body, "syncd_files_downloaded_total", media_type="videos") == 3
    assert value(body, "syncd_api_requests_total", code="200") == 1
    assert value(body, "syncd_credits_spent_total") == 2
    assert value(body, "syncd_job_runs_total", job="backfill", outcome="failure") == 0


def test_healthz_goes_200_then_503_then_200(server):
    metrics, base = server
    now = __import__("time").time()
    metrics.schedule_job("catch_up", period_s=900, first_due=now + 900)
    metrics.schedule_job("verify", period_s=86400, first_due=now + 86400)
    status, _, body = get(base + "/healthz")
    assert (status, body) == (200, "ok: catch_up, verify\n")

    metrics.record_job("catch_up", "failure", duration_s=2, finished_at=now)
    status, _, body = get(base + "/healthz")
    assert status == 503
    assert body == "unhealthy\ncatch_up: last run failed\n"

    metrics.record_job("catch_up", "success", duration_s=2, finished_at=now + 1)
    status, _, body = get(base + "/healthz")
    assert (status, body) == (200, "ok: catch_up, verify\n")


def test_healthz_turns_503_when_a_job_is_overdue(server):
    metrics, base = server
    now = __import__("time").time()
    metrics.schedule_job("updates", period_s=60, first_due=now - 121)
    status, _, body = get(base + "/healthz")
    assert status == 503
    assert "updates: no success in 2m" in body


def test_unknown_path_is_404(server):
    _, base = server
    assert get(base + "/")[0] == 404
    assert get(base + "/metricsx")[0] == 404


def test_address_in_use_is_a_config_error_naming_the_key():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(
            ConfigError, match=r"serve.metrics_address: cannot listen on 127\.0\.0\.1:"
        ):
            MetricsServer(taken.getsockname(), Metrics())
    finally:
        taken.close()


def test_metrics_address_off_starts_no_server():
    assert start_metrics_server(None, Metrics()) is None


def test_closed_server_stops_answering():
    metrics = Metrics()
    running = start_metrics_server(("127.0.0.1", 0), metrics)
    port = running.address[1]
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    running.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


# --- the textfile ---------------------------------------------------------------------------


def test_textfile_holds_the_exposition_and_replaces_the_old_file_by_rename(tmp_path):
    target = tmp_path / "syncd.prom"
    target.write_text("old\n")
    before = os.stat(target).st_ino
    metrics = Metrics()
    metrics.record_run({}, {"audio": {"licenses_seen": 4}})
    metrics.write_textfile(target)
    text = target.read_text()
    assert value(text, "syncd_licenses_seen_total", media_type="audio") == 4
    assert os.stat(target).st_ino != before  # a new file renamed over the old one
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syncd.prom"]


def test_textfile_labels_go_on_every_sample(tmp_path):
    target = tmp_path / "backfill.prom"
    Metrics().write_textfile(target, labels={"command": "backfill"})
    found = [s for f in text_string_to_metric_families(target.read_text()) for s in f.samples]
    assert len(found) > 40
    assert all(sample.labels.get("command") == "backfill" for sample in found)


def test_textfile_into_a_missing_folder_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        Metrics().write_textfile(tmp_path / "nope" / "syncd.prom")
    assert list(tmp_path.iterdir()) == []
