"""The XDM "Experience Event - Proposition Interactions" layout as Spark sees it: the explicit event schema, JSON-lines
parsing that says why a line is unreadable, the identity rule (which identity is the profile) and the flattening of
events into one row per (event, proposition, item). Shared by the ingest and profiles jobs.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from offerrank.catalog import ID_PATTERN

EVENT_KINDS = {
    "decisioning.propositionDisplay": "display",
    "decisioning.propositionInteract": "interact",
    "decisioning.propositionDismiss": "dismiss",
    "decisioning.propositionSend": "send",
    "decisioning.propositionTrigger": "trigger",
}
INTERACTIONS = {"display": "impression", "interact": "conversion"}
_ID = T.StructType([T.StructField("id", T.StringType())])
_ITEM = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("name", T.StringType()),
        T.StructField(
            "itemSelection",
            T.StructType(
                [
                    T.StructField(
                        "rankingDetail",
                        T.StructType(
                            [T.StructField("trafficType", T.StringType()), T.StructField("propensity", T.DoubleType())]
                        ),
                    ),
                ]
            ),
        ),
    ]
)
_PROPOSITION = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("scope", T.StringType()),
        T.StructField(
            "scopeDetails",
            T.StructType(
                [
                    T.StructField("placement", _ID),
                    T.StructField("decisionPolicy", _ID),
                    T.StructField("activity", _ID),
                ]
            ),
        ),
        T.StructField("items", T.ArrayType(_ITEM)),
    ]
)
EVENT_SCHEMA = T.StructType(
    [
        T.StructField("_id", T.StringType()),
        T.StructField("timestamp", T.StringType()),
        T.StructField("eventType", T.StringType()),
        T.StructField(
            "identityMap",
            T.MapType(
                T.StringType(),
                T.ArrayType(
                    T.StructType(
                        [
                            T.StructField("id", T.StringType()),
                            T.StructField("primary", T.BooleanType()),
                        ]
                    )
                ),
            ),
        ),
        T.StructField("channel", T.StructType([T.StructField("_type", T.StringType())])),
        T.StructField("device", T.StructType([T.StructField("type", T.StringType())])),
        T.StructField("placeContext", T.StructType([T.StructField("localTime", T.StringType())])),
        T.StructField(
            "_experience",
            T.StructType(
                [
                    T.StructField(
                        "decisioning",
                        T.StructType(
                            [
                                T.StructField("propositionEventType", T.MapType(T.StringType(), T.LongType())),
                                T.StructField("channelType", T.StringType()),
                                T.StructField("propositions", T.ArrayType(_PROPOSITION)),
                            ]
                        ),
                    )
                ]
            ),
        ),
    ]
)

PARSE_REASONS = {
    "invalid_utf8": "the record is not valid UTF-8",
    "oversized_record": "the record is larger than the allowed record size",
    "malformed_json": "the record is not valid JSON",
    "not_an_object": "the record is valid JSON but not an object",
    "wrong_field_type": "a field has the wrong JSON type (e.g. propositions or items not an array)",
}


def parse_json_lines(records: DataFrame, schema: T.StructType, max_record_bytes: int) -> DataFrame:
    """`records` (a `raw` text column) plus `j`, the record parsed with `schema`, and `parse_status`: ok, or why not.
    A record larger than `max_record_bytes` is never parsed (`j` null): a line of millions of items would otherwise
    become millions of rows in the executor's memory before it is quarantined."""
    raw = F.col("raw")
    oversized = F.octet_length(raw) > max_record_bytes
    with_corrupt = T.StructType(schema.fields + [T.StructField("_corrupt_record", T.StringType())])
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}
    parsed = records.withColumn("j", F.when(~oversized, F.from_json(raw, with_corrupt, options)))
    is_json_value = F.get_json_object(F.concat(F.lit('{"v":'), raw, F.lit("}")), "$.v").isNotNull()
    parse_status = (
        F.when(~F.is_valid_utf8(raw), "invalid_utf8")
        .when(oversized, "oversized_record")
        .when(F.col("j._corrupt_record").isNull(), "ok")
        .when(F.json_object_keys(raw).isNull(), F.when(is_json_value, "not_an_object").otherwise("malformed_json"))
        .otherwise("wrong_field_type")
    )
    return parsed.withColumn("parse_status", F.coalesce(parse_status, F.lit("malformed_json")))


def placement_of(proposition: Column) -> Column:
    """A proposition's placement: `scopeDetails.placement.id`, else its `scope`."""
    return F.coalesce(proposition["scopeDetails"]["placement"]["id"], proposition["scope"])


def decision_of(proposition: Column) -> Column:
    """A proposition's decision: `scopeDetails.decisionPolicy.id`, else `scopeDetails.activity.id`."""
    return F.coalesce(
        proposition["scopeDetails"]["decisionPolicy"]["id"], proposition["scopeDetails"]["activity"]["id"]
    )


def parse_records(records: DataFrame, max_record_bytes: int, known_offers: list[str] | None = None) -> DataFrame:
    """Parse each record with the explicit event schema and derive the columns the record-level suite checks.

    `known_offers`: the offer ids events may name (those of the registry's catalog versions since the lateness window
    began); without a catalog, `unknown_offers` is null and not checked.
    """
    raw = F.col("raw")
    parsed = parse_json_lines(records, EVENT_SCHEMA, max_record_bytes)
    decisioning = F.col("j._experience.decisioning")
    propositions = F.coalesce(decisioning["propositions"], F.array())
    items = F.flatten(F.transform(propositions, lambda p: F.coalesce(p["items"], F.array())))
    ids = F.concat(
        F.transform(propositions, lambda p: p["id"]),
        F.transform(propositions, placement_of),
        F.transform(propositions, decision_of),
        F.transform(items, lambda i: i["id"]),
    )
    proposition_kinds = F.map_keys(F.map_filter(decisioning["propositionEventType"], lambda k, v: v == 1))
    return parsed.select(
        "source_file",
        "raw",
        record_hash(raw).alias("record_hash"),
        "parse_status",
        F.col("j._id").alias("event_id"),
        F.col("j.timestamp").alias("timestamp_text"),
        F.try_to_timestamp(F.col("j.timestamp")).alias("event_ts"),
        F.col("j.eventType").alias("event_type"),
        map_values(F.col("j.eventType"), EVENT_KINDS).alias("event_kind"),
        F.when(F.size(proposition_kinds) == 1, F.get(proposition_kinds, 0)).alias("proposition_kind"),
        # the last path segment of the channel URI (a split, not a regular expression: it runs on every record)
        F.coalesce(
            F.nullif(F.substring_index(F.col("j.channel._type"), "/", -1), F.lit("")), decisioning["channelType"]
        ).alias("channel"),
        primary_profile_id(F.col("j.identityMap")).alias("profile_id"),
        F.col("j.device.type").alias("device"),
        hour_of(F.col("j.placeContext.localTime"), F.try_to_timestamp(F.col("j.timestamp"))).alias("hour"),
        F.size(propositions).alias("propositions_count"),
        F.size(F.filter(propositions, lambda p: p["id"].isNull())).alias("propositions_without_id"),
        F.size(F.filter(propositions, lambda p: placement_of(p).isNull())).alias("propositions_without_placement"),
        F.size(F.filter(propositions, lambda p: F.coalesce(F.size(p["items"]), F.lit(0)) <= 0)).alias(
            "propositions_without_items"
        ),
        F.size(F.filter(items, lambda i: i["id"].isNull())).alias("items_without_id"),
        F.size(F.filter(ids, lambda i: i.isNotNull() & ~i.rlike(ID_PATTERN))).alias("ids_with_invalid_format"),
        F.size(F.filter(items, lambda i: ~i["itemSelection"]["rankingDetail"]["propensity"].between(0, 1))).alias(
            "items_with_invalid_propensity"
        ),
        # the suite holds it against the floor (`min_propensity`): a tiny weight's inverse would swamp evaluations
        F.array_min(F.transform(items, lambda i: i["itemSelection"]["rankingDetail"]["propensity"])).alias(
            "least_propensity"
        ),
        (
            # `isin` hashes the known ids once; an `array_except` against them built a set for every record
            F.size(
                F.array_distinct(
                    F.filter(F.transform(items, lambda i: i["id"]), lambda i: i.isNotNull() & ~i.isin(known_offers))
                )
            )
            if known_offers is not None
            else F.lit(None).cast("int")
        ).alias("unknown_offers"),
        propositions.alias("propositions"),
    )


def hour_of(local_time: Column, event_ts: Column) -> Column:
    """The event's hour: of `placeContext.localTime` (the local time, as sent), else of its UTC timestamp."""
    local_hour = F.regexp_extract(local_time, r"^\d{4}-\d{2}-\d{2}T(\d{2})", 1)
    return F.coalesce(F.nullif(local_hour, F.lit("")), F.hour(event_ts)).cast("int")


def record_hash(raw: Column) -> Column:
    """Identity of a record's content: equal text, equal hash; 128 bits (two xxHash64 digests of the text, seeded
    apart), so two distinct records share one by chance with odds of about 2^-128. Not SHA-256: hashing every record
    with it took a fifth of ingest's first pass over a day."""
    return F.struct(F.xxhash64(raw).alias("high"), F.xxhash64(F.lit("offerrank"), raw).alias("low"))


def map_values(column: Column, mapping: dict[str, str]) -> Column:
    return F.try_element_at(F.create_map(*[F.lit(x) for pair in mapping.items() for x in pair]), column)


def primary_profile_id(identity_map: Column) -> Column:
    """The identity marked primary (any namespace, first in namespace order), else the first ECID."""
    identities = F.flatten(F.transform(F.map_entries(F.coalesce(identity_map, F.create_map())), lambda e: e["value"]))
    primary = F.filter(identities, lambda i: F.coalesce(i["primary"], F.lit(False)) & i["id"].isNotNull())
    return F.coalesce(F.get(primary, 0)["id"], F.get(F.try_element_at(identity_map, F.lit("ECID")), 0)["id"])


def flatten_records(records: DataFrame) -> DataFrame:
    """`records` (one row per record, its `propositions`) as one row per (record, proposition, item), each with its
    record's columns, and at least one row per record (a record without propositions or items keeps one, its item
    columns null): `record_id` (unique in the frame) tells the records apart, and `record_row` marks one row of each.
    A job caches this flat form once and reads records, rule counts and interactions from it, instead of
    flattening the nested propositions again for every use."""
    record_columns = [column for column in records.columns if column != "propositions"]
    propositions = records.withColumn("record_id", F.monotonically_increasing_id()).select(
        "*", F.posexplode_outer("propositions").alias("proposition_index", "p")
    )
    items = propositions.select("*", F.posexplode_outer("p.items").alias("item_index", "item"))
    return items.select(
        *record_columns,
        "record_id",
        (F.coalesce(F.col("proposition_index"), F.lit(0)) + F.coalesce(F.col("item_index"), F.lit(0)) == 0).alias(
            "record_row"
        ),
        F.col("p.id").alias("proposition_id"),
        placement_of(F.col("p")).alias("placement_id"),
        decision_of(F.col("p")).alias("decision_id"),
        "item_index",
        F.col("item.id").alias("offer_id"),
        F.col("item.itemSelection.rankingDetail.trafficType").alias("traffic_type"),
        F.col("item.itemSelection.rankingDetail.propensity").alias("propensity"),
    )


def to_interactions(accepted: DataFrame, run_date: date, run_id: str) -> DataFrame:
    """One row per (event, proposition, item) of accepted impressions and conversions, from their flat rows
    (`flatten_records`); an impression's `slot` is its item's place in the proposition (1 = first), what its
    propensity is the probability of. The request context a contextual model learns from: `device` (`device.type`)
    and `hour` (of `placeContext.localTime`, the local time, else of the UTC timestamp)."""
    items = accepted.filter(F.col("event_kind").isin(list(INTERACTIONS)) & F.col("item_index").isNotNull())
    return items.select(
        "event_id",
        "event_ts",
        F.to_date("event_ts").alias("event_date"),
        map_values(F.col("event_kind"), INTERACTIONS).alias("interaction"),
        "profile_id",
        "proposition_id",
        "placement_id",
        "decision_id",
        "offer_id",
        "channel",
        "device",
        "hour",
        "traffic_type",
        "propensity",
        F.when(F.col("event_kind") == "display", F.col("item_index") + 1).alias("slot"),
        "source_file",
        F.lit(run_id).alias("run_id"),
        F.lit(run_date).alias("landing_date"),
    )
