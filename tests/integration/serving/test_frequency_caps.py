"""Frequency caps across days: a channel serves through the lookup and logs what it showed, the nightly ingest and
aggregate count the caps, and the next day's lookup (a new process) serves on from those counts."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from offerrank.catalog import Dataset, FrequencyCap, load_catalog
from offerrank.catalog.registry import Registry
from offerrank.jobs import aggregate, ingest
from offerrank.serving.lookup import RankingLookup
from offerrank.settings import load_settings
from tests.factories import published_order

FIRST_DAY = date(2026, 11, 2)
DAILY_CAP, PROFILE_CAP, PROFILES, REQUESTS = 40, 3, 30, 150


def display_event(answer, profile_id: str, day: date, n: int) -> str:
    """The impression a channel logs for the first offer of `answer`, with the proposition the lookup gave."""
    timestamp = datetime.combine(day, time(12), UTC) + timedelta(seconds=n)
    return json.dumps(
        {
            "_id": f"evt-{day:%Y%m%d}-{n:04d}",
            "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "eventType": "decisioning.propositionDisplay",
            "identityMap": {"ECID": [{"id": profile_id, "primary": True}]},
            "channel": {"_type": "https://ns.adobe.com/xdm/channel-types/web"},
            "_experience": {
                "decisioning": {"propositionEventType": {"display": 1}, "propositions": [answer.proposition(shown=1)]}
            },
        }
    )


def test_a_capped_offer_is_never_served_past_its_caps_over_days_of_serving_and_ingesting(
    spark, ranked_warehouse, tmp_path
):
    shutil.copytree(ranked_warehouse.warehouse, tmp_path / "warehouse")
    settings = load_settings(home=tmp_path)
    catalog = load_catalog(ranked_warehouse.catalog_file)
    capped = published_order(1, "home-hero")[0]  # first in the published order: served whenever it may be
    caps = (
        FrequencyCap(event="impression", limit=DAILY_CAP, period="day"),
        FrequencyCap(event="impression", per="profile", limit=PROFILE_CAP, period="lifetime"),
    )
    offers = tuple(o.model_copy(update={"caps": caps}) if o.id == capped else o for o in catalog.offers)
    landing = tmp_path / "sample" / "events"  # what the channel logs lands here: the catalog's one dataset
    catalog = catalog.model_copy(update={"offers": offers, "datasets": (Dataset(name="events", path=str(landing)),)})
    Registry(settings).commit(catalog, datetime(2026, 11, 1, tzinfo=UTC), check_datasets=False)

    shown, dropped_as_capped = Counter(), Counter()
    last_day = FIRST_DAY + timedelta(days=2)
    for day in (FIRST_DAY + timedelta(days=n) for n in range(3)):
        # a new lookup process each day: only the nightly counts carry what was served before
        lookup = RankingLookup(settings, clock=lambda day=day: datetime.combine(day, time(12), UTC))
        lines = []
        for n in range(REQUESTS):
            profile = f"ecid-{n % PROFILES:03d}"
            answer = lookup.top("home-hero", "web", profile_id=profile, limit=1, mode="published")
            shown[day, profile] += answer.offers[0].offer_id == capped
            dropped_as_capped[day] += answer.dropped["capped"]
            lines.append(display_event(answer, profile, day, n))
        folder = landing / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
        assert ingest.run(spark, settings, day, f"run-{day}").success
        if day != last_day:  # the night's cap counts, which the next day's lookup reads
            aggregate.run(spark, settings, catalog, day)

    per_day = {day: sum(n for (d, _), n in shown.items() if d == day) for day in sorted({d for d, _ in shown})}
    per_profile = Counter()
    for (_, profile), n in shown.items():
        per_profile[profile] += n
    # 30 profiles x 3 = 90 impressions in all: 40 a day until the per-profile caps bind on the third day
    assert list(per_day.values()) == [DAILY_CAP, DAILY_CAP, PROFILES * PROFILE_CAP - 2 * DAILY_CAP]
    assert max(per_profile.values()) == PROFILE_CAP
    assert all(dropped_as_capped[day] == REQUESTS - per_day[day] for day in per_day)
    counted = (
        spark.read.format("delta")
        .load(settings.table_path("interactions"))
        .filter(f"offer_id = '{capped}'")
        .groupBy("event_date")
        .count()
        .collect()
    )
    assert {row.event_date: row["count"] for row in counted} == per_day  # what was logged is what was served
