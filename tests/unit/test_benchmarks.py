"""The benchmarks' own logic that decides what RESULTS.md says: the storm plan, the database verdict, the
scale targets, the report of a finished run (benchmarks/results.json)."""

import json

from benchmarks import report, scale, storm, variants
from benchmarks.common import REPO
from deployer import facts


def test_storm_plan_runs_every_size_twice_in_both_orders():
    assert storm._plan((50, 200)) == [(50, "a", False), (50, "b", True), (200, "a", False), (200, "b", True)]


def _storm(pg_total, pg_api):
    comparison = {"total_p99": 1.0, "total_p50": 1.0, "api_p99": 1.0, "hub_cpu": 1.0}
    if pg_total is not None:
        comparison["postgresql_vs_sqlite"] = {"total_p99": pg_total, "total_p50": 1.0, "api_p99": pg_api,
                                              "hub_cpu": 1.0}
    by_variant = {"ours": {"failures": []}, "ours-postgresql": {"failures": []}}
    return {"comparisons": {"50": dict(comparison), "200": comparison}, "notes": [],
            "by_size": {"50": by_variant, "200": by_variant}}


def test_postgresql_wins_clearly_only_when_both_p99_ratios_are_low_at_the_largest_size():
    assert report.database_verdict(_storm(0.5, 0.5))[0] is True
    assert report.database_verdict(_storm(0.5, 0.9))[0] is False
    assert report.database_verdict(_storm(0.9, 0.5))[0] is False
    assert report.database_verdict(_storm(None, None))[0] is None


def test_report_says_what_the_database_verdict_is():
    text = "\n".join(report._database(_storm(0.5, 0.5)))
    assert "PostgreSQL wins clearly at 200 users" in text
    text = "\n".join(report._database(_storm(0.95, 0.5)))
    assert "does not win clearly" in text and "not a cluster-file choice" in text


def test_every_scale_target_is_reported_and_anchored():
    assert {key for key, *_ in report.SCALE_ROWS} == set(scale.TARGETS)
    assert "github.com/jupyterhub/jupyterhub/pull/1643" in report.SCALE_ANCHORS


def test_the_stand_in_users_file_adds_bench_users_to_the_allowed_team(tmp_path):
    import yaml

    variants.write_users_file(tmp_path / "users.yaml", ["bench001"])
    data = yaml.safe_load((tmp_path / "users.yaml").read_text())
    org, team = facts.load("local")["github"]["allowed_teams"][0].split(":")
    assert "bench001" in data["users"] and "bench001" in data["orgs"][org]["teams"][team]


def test_the_committed_results_render_with_every_benchmark_they_hold():
    results = json.loads((REPO / "benchmarks" / "results.json").read_text())
    text = report.markdown(results)
    for name, result in results["benchmarks"].items():
        if "title" in result:
            assert f"## {result['title']}" in text, name



def test_a_storm_size_pools_its_rounds_and_counts_failed_users():
    class Prober:
        latencies_ms, failures = [10.0, 20.0], []

    rounds = [([{"user": "a", "login_s": 1.0, "spawn_s": 2.0}], Prober(), 3.0, {"hub": 1.0, "standin": None}),
              ([{"user": "b", "error": "HTTP 500"}], Prober(), 5.0, {"hub": 2.0, "standin": 0.5})]
    result = storm._round_result(rounds, baseline={})
    assert (result["users"], result["succeeded"], len(result["failures"])) == (2, 1, 1)
    assert result["total_s"]["p99"] == 3.0
    assert (result["hub_cpu_s"], result["standin_cpu_s"], result["storm_wall_s"]) == (1.5, 0.5, 4.0)
    assert result["api_latency_ms"]["n"] == 4
