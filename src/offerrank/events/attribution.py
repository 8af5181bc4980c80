"""Which shown proposition item a click belongs to, on interaction rows (DataFrame in, DataFrame out): rows tagged
with their segments (every row in `*`, and once more in each segment of its profile), the shown and clicked
proposition items per segment, and the clicks attributed to their impression (a click whose impression is unknown is
an orphan). Used by the aggregate job's daily facts and the contextual models' feature cells.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from offerrank.tables import ALL_SEGMENTS, UNKNOWN_TRAFFIC

# one shown (or clicked) proposition item in a segment: a click is attributed within its event dataset
ITEM_KEYS = ["dataset", "proposition_id", "offer_id", "segment"]


def tagged(interactions: DataFrame, memberships: DataFrame | None = None) -> DataFrame:
    """`interactions` with a `segment`: every row in `*` and, through `memberships`, once more in each segment of its
    profile. `memberships` holds (profile_id, segment), or (snapshot_date, profile_id, segment) when the
    interactions carry the snapshot of their landing day: its columns other than `segment` are what it joins on."""
    interactions = interactions.withColumn("traffic_type", F.coalesce("traffic_type", F.lit(UNKNOWN_TRAFFIC)))
    rows = interactions.withColumn("segment", F.lit(ALL_SEGMENTS))
    if memberships is None:
        return rows
    keys = [column for column in memberships.columns if column != "segment"]
    return rows.unionByName(interactions.join(memberships, keys).select(*interactions.columns, "segment"))


def clicked_items(clicks: DataFrame, carry: tuple[str, ...] = ()) -> DataFrame:
    """One row per clicked proposition item x segment of tagged `clicks`: its first click's date and the click's
    placement, channel and traffic type (`click_*`) (and the columns `carry`)."""
    return clicks.groupBy(*ITEM_KEYS).agg(
        F.min("event_date").alias("click_date"),
        F.first("placement_id").alias("click_placement"),
        F.first("channel").alias("click_channel"),
        F.first("traffic_type").alias("click_traffic_type"),
        *[F.first(column).alias(column) for column in carry],
    )


def attribution(interactions: DataFrame, memberships: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """(impressions, clicked): the tagged impressions of `interactions`, and their clicked proposition items."""
    rows = tagged(interactions, memberships)
    is_impression = F.col("interaction") == "impression"
    return rows.filter(is_impression), clicked_items(rows.filter(~is_impression))


def shown_items(impressions: DataFrame, carry: tuple[str, ...] = (), by: tuple[str, ...] = ()) -> DataFrame:
    """One row per shown proposition item x segment of `impressions` (and per the columns `by`): its first date,
    placement, channel, traffic type, slot and logged propensity (and the columns `carry`)."""
    return impressions.groupBy(*by, *ITEM_KEYS).agg(
        F.min("event_date").alias("event_date"),
        F.first("placement_id").alias("placement_id"),
        F.first("channel").alias("channel"),
        F.first("traffic_type").alias("traffic_type"),
        F.first("slot", ignorenulls=True).alias("slot"),
        F.first("propensity", ignorenulls=True).alias("propensity"),
        *[F.first(column).alias(column) for column in carry],
    )


def attributed_clicks(interactions: DataFrame, memberships: DataFrame | None = None) -> DataFrame:
    """The clicked proposition items of `interactions`: one row per clicked item x segment of its impression's
    profile, with the impression's first date, placement, channel, traffic type, slot and propensity; an item whose
    impression is unknown (an orphan) instead has one row per segment of its click's profile, with the click's
    date, placement, channel and traffic type (`click_*`) and a null `event_date`. Only the clicked items'
    impressions are grouped: clicks are few, and a late click's impression may lie on any landing day of the
    window. Items are attributed once, then counted in their segments."""
    keys = ["dataset", "proposition_id", "offer_id"]
    carry = () if memberships is None else tuple(column for column in memberships.columns if column != "segment")
    clicked = clicked_items(tagged(interactions.filter(F.col("interaction") == "conversion")), carry)
    # matched on a 64-bit hash of the item: a narrow key that adaptive execution broadcasts while the window's clicks
    # are a few hundred thousand; the window below drops an impression whose hash matched another item's
    item_hash = F.xxhash64(*keys).alias("item_hash")
    impressions = (
        interactions.filter(F.col("interaction") == "impression")
        .withColumn("item_hash", item_hash)
        .join(clicked.select(item_hash).distinct(), "item_hash", "left_semi")
        .drop("item_hash")
    )
    both = shown_items(tagged(impressions), carry).unionByName(clicked, allowMissingColumns=True)
    item = Window.partitionBy(*keys)
    attributed = (
        both.withColumns(
            {
                "has_impression": F.max(F.col("event_date").isNotNull()).over(item),
                "has_click": F.max(F.col("click_date").isNotNull()).over(item),
            }
        )
        .filter(F.when(F.col("event_date").isNull(), ~F.col("has_impression")).otherwise(F.col("has_click")))
        .drop("has_impression", "has_click", "segment")
    )
    return tagged(attributed, memberships)
