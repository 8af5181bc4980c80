"""The HTTP lookup service: the real app under uvicorn on a real loopback socket."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from offerrank.serving.lookup import RankingLookup
from offerrank.serving.service import create_app
from offerrank.settings import load_settings
from tests.factories import published_order, warehouse_copy
from tests.integration.serving.test_lookup import TODAY


@pytest.fixture(scope="module")
def service(ranked_warehouse):
    lookup = RankingLookup(ranked_warehouse, clock=lambda: TODAY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(lookup), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client, lookup
    server.should_exit = True
    thread.join(timeout=10)


def test_a_good_request_gets_the_ranked_offers(service):
    client, lookup = service
    response = client.get("/v1/rankings/home-hero", params={"channel": "web", "limit": 2, "mode": "published"})
    assert response.status_code == 200
    body = response.json()
    version = lookup.snapshot.ranking_version
    expected = published_order(version, "home-hero")[:2]
    assert body["ranking_version"] == version and body["decision_id"] == "dp-web-home" and body["mode"] == "published"
    assert [(o["offer_id"], o["rank"], o["reason"], o["traffic_type"], o["propensity"]) for o in body["offers"]] == [
        (expected[0], 1, "model", "model", 1.0),
        (expected[1], 2, "model", "model", 1.0),
    ]
    assert (body["as_of_date"], body["run_id"]) == (f"2026-11-{version:02d}", f"run-{version}")  # the list's own run


def test_the_http_answer_gives_the_segment_only_when_the_setting_says_so(service, ranked_warehouse):
    """Issue #54 (20): the HTTP lookup, which has no authentication, told anyone a profile's segment."""
    import asyncio

    client, lookup = service
    params = {"channel": "web", "profile": "profile-42", "request_id": "req-7", "mode": "published"}
    assert lookup.top("home-hero", "web", "profile-42", mode="published").segment == "*"  # the library gives it
    assert not ranked_warehouse.http_show_segment  # off by default
    hidden = client.get("/v1/rankings/home-hero", params=params).json()
    assert "segment" not in hidden and hidden["ranking_version"] == lookup.snapshot.ranking_version

    async def rankings(app) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://lookup") as client:
            return await client.get("/v1/rankings/home-hero", params=params)

    shown = RankingLookup(ranked_warehouse.model_copy(update={"http_show_segment": True}), clock=lambda: TODAY)
    body = asyncio.run(rankings(create_app(shown))).json()
    assert body["segment"] == "*" and {k: v for k, v in body.items() if k != "segment"} == hidden


def test_the_policy_answer_says_what_to_log_and_a_request_id_repeats_it(service):
    client, _ = service
    params = {"channel": "web", "profile": "profile-42", "request_id": "req-42"}
    first, second = (client.get("/v1/rankings/home-hero", params=params).json() for _ in range(2))
    assert first == second and first["mode"] == "policy" and first["request_id"] == "req-42"
    assert first["traffic_type"] in ("random", "model")
    assert first["dropped"] == {"not_eligible": 0, "not_live": 0, "audience": 0, "capped": 0}
    assert all(o["traffic_type"] == first["traffic_type"] and 0 < o["propensity"] < 1 for o in first["offers"])
    anonymous = [client.get("/v1/rankings/home-hero", params={"channel": "web"}).json() for _ in range(20)]
    assert len({a["request_id"] for a in anonymous}) == 20
    assert len({tuple(o["offer_id"] for o in a["offers"]) for a in anonymous}) > 1


def test_a_placement_without_ranking_answers_with_its_fallback(service):
    client, _ = service
    params = {"channel": "push", "limit": 3, "mode": "published"}
    body = client.get("/v1/rankings/push-evening", params=params).json()
    assert body["ranking_version"] is None and body["offers"][0]["reason"] == "fallback"
    assert {o["reason"] for o in body["offers"][1:]} == {"priority_fallback"}


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("/v1/rankings/no-such-slot", {"channel": "web"}, 404, "unknown placement 'no-such-slot'"),
        ("/v1/rankings/home-hero", {"channel": "email"}, 404, "is on channel 'web', not 'email'"),
        ("/v1/rankings/home-hero", {}, 422, "channel: Field required"),
        ("/v1/rankings/home-hero", {"channel": "fax"}, 422, "channel: String should match pattern"),
        (
            "/v1/rankings/home-hero",
            {"channel": "web", "limit": 0},
            422,
            "limit: Input should be greater than or equal to 1",
        ),
        (
            "/v1/rankings/home-hero",
            {"channel": "web", "limit": 101},
            422,
            "limit: Input should be less than or equal to 100",
        ),
        (
            "/v1/rankings/home-hero",
            {"channel": "web", "mode": "maybe"},
            422,
            "mode: Input should be 'policy' or 'published'",
        ),
        (
            "/v1/rankings/home-hero",
            {"channel": "web", "profile": "x" * 300},
            422,
            "profile: String should match pattern",
        ),
        ("/v1/rankings/" + "a" * 200, {"channel": "web"}, 422, "placement_id: String should match pattern"),
        (
            "/v1/rankings/home-hero",
            {"channel": "web", "decision": "dp-checkout"},
            400,
            "does not assign placement 'home-hero'",
        ),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(service, path, params, status, error):
    client, _ = service
    response = client.get(path, params=params)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_the_service_is_read_only_and_documented(service):
    client, _ = service
    assert client.post("/v1/rankings/home-hero", params={"channel": "web"}).status_code == 405
    assert client.delete("/v1/rankings/home-hero").status_code == 405
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/v1/rankings/{placement_id}", "/healthz"}
    assert client.get("/docs").status_code == 200


def test_healthz_reports_the_serving_version(service):
    client, lookup = service
    response = client.get("/healthz")
    health = response.json()
    assert response.status_code == 200 and health["status"] == "ok" and health["problems"] == []
    assert health["ranking_version"] == lookup.snapshot.ranking_version == 1
    assert health["ranking_age_hours"] == 30.0  # published 2026-11-01 03:00, served 2026-11-02 09:00


def test_healthz_is_a_503_once_the_ranking_is_older_than_the_limit(ranked_warehouse):
    import asyncio

    async def healthz(app) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://lookup") as client:
            return await client.get("/healthz")

    stale = RankingLookup(ranked_warehouse, clock=lambda: TODAY + timedelta(days=2))
    response = asyncio.run(healthz(create_app(stale)))
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    assert response.json()["problems"] == [
        "the ranking served was published 78.0 h ago (limit 48 h): the nightly runs are failing or refused"
    ]


def test_healthz_after_a_refresh_error_names_the_table_and_the_error_kind_but_no_path(ranked_warehouse, tmp_path):
    """Issue #54 (13): /healthz, open to anyone who reaches the service, gave the storage paths of the warehouse."""
    import asyncio

    async def healthz(app) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://lookup") as client:
            return await client.get("/healthz")

    settings = warehouse_copy(ranked_warehouse, tmp_path)
    table = Path(settings.table_path("offer_rankings"))
    for data_file in table.rglob("*.parquet"):  # its log points at files that are gone: a read names their paths
        data_file.unlink()
    lookup = RankingLookup(settings, clock=lambda: TODAY)
    assert str(tmp_path) in lookup.last_refresh_detail  # the error's message names the table's path
    response = asyncio.run(healthz(create_app(lookup)))
    assert response.status_code == 503
    health = response.json()
    assert health["last_refresh_error"].startswith("offer_rankings: ")
    assert any(p.startswith("the last refresh could not read offer_rankings: ") for p in health["problems"])
    for path in (str(tmp_path), settings.warehouse, str(table), table.as_uri(), tmp_path.name):
        assert path not in response.text


def test_a_warehouse_with_nothing_to_serve_yet_gets_a_503_that_says_why(tmp_path):
    import asyncio

    async def rankings(app) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://lookup") as client:
            return await client.get("/v1/rankings/home-hero", params={"channel": "web"})

    empty = RankingLookup(load_settings(home=tmp_path), clock=lambda: TODAY)
    response = asyncio.run(rankings(create_app(empty)))
    assert response.status_code == 503
    assert response.json() == {"error": "nothing to serve yet: no catalog was applied and no ranking was published"}


def test_an_unexpected_failure_is_a_500_without_internals(service, monkeypatch):
    client, lookup = service

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(lookup, "top", broken)
    response = client.get("/v1/rankings/home-hero", params={"channel": "web"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"} and "secret" not in response.text
