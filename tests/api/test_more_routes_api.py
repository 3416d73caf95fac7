"""Script, stats, clusters, and verbs a cluster cannot do (501)."""

from __future__ import annotations

from api_client import Api

from jobgate.backends.base import Capabilities

SCRIPT = "#!/bin/bash\n#SBATCH -J scripted\necho hi\n"


def test_script_is_served_as_submitted(api: Api) -> None:
    job = api.submit(script=SCRIPT)
    answer = api.get(f"/v1/jobs/{job['id']}/script")
    assert answer.status_code == 200 and answer.text == SCRIPT
    wrapped = api.submit(command="echo wrapped")
    assert api.get(f"/v1/jobs/{wrapped['id']}/script").text.endswith("echo wrapped\n")
    assert api.get("/v1/jobs/99999/script").status_code == 404


def test_stats_of_an_ended_job(api: Api) -> None:
    job = api.submit(command="python3 -c 'sum(range(2000000))'", cpus_per_task=1)
    api.wait_final(job["id"])
    stats = api.get(f"/v1/jobs/{job['id']}/stats").json()
    assert stats["state"] == "COMPLETED"
    assert stats["cpu_time"] > 0 and stats["max_rss"] > 0
    assert stats["cpu_time"] == stats["cpu_user"] + stats["cpu_system"]
    assert stats["allocation"]["cpus"] and stats["elapsed_cpu_time"] == stats["run_time"]


def test_clusters_describe_partitions_verbs_resources_and_load(api: Api) -> None:
    listed = api.get("/v1/clusters").json()["clusters"]
    assert [c["name"] for c in listed] == ["local"]
    local = api.get("/v1/clusters/local").json()
    assert local["default"] is True and local["default_partition"] == "normal"
    assert {"cancel", "suspend", "resume", "signal", "notify", "modify"} <= set(local["verbs"])
    assert local["resources"]["nodes"][0]["cpus"] >= 1
    api.submit(command="true", hold=True)
    assert api.get("/v1/clusters/local").json()["load"]["jobs"] == {"PENDING": 1}
    missing = api.get("/v1/clusters/mars")
    assert missing.status_code == 404 and "local" in missing.json()["message"]
    assert api.client.get("/v1/clusters").status_code == 401


def test_a_verb_the_cluster_cannot_do_is_501(api: Api) -> None:
    job = api.submit(command="sleep 30")
    backend = api.gateway.backends["local"]
    original = backend.capabilities
    backend.capabilities = Capabilities(verbs=frozenset({"cancel"}),  # type: ignore[misc]
                                        spec_fields=original.spec_fields)
    try:
        answer = api.post(f"/v1/jobs/{job['id']}/suspend")
        assert answer.status_code == 501
        assert answer.json()["details"]["verb"] == "suspend"
    finally:
        backend.capabilities = original  # type: ignore[misc]
    api.post(f"/v1/jobs/{job['id']}/cancel")


def test_metrics_for_admins(api: Api) -> None:
    job = api.submit(command="true")
    api.wait_final(job["id"])
    text = api.get("/metrics").text
    assert 'jobgate_jobs{cluster="local",state="COMPLETED"} 1.0' in text
    assert "jobgate_submit_seconds_count 1.0" in text
    assert 'jobgate_backend_calls_total{call="start",cluster="local"} 1.0' in text
    assert "jobgate_engine_round_seconds_count" in text
    ana = api.add_user("ana", "ana-token")
    assert api.get("/metrics", headers=ana).status_code == 403
    assert api.client.get("/metrics").status_code == 401
