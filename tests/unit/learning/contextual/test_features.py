"""The contextual model's features: levels of raw values, the one-hot dictionary."""

from __future__ import annotations

from offerrank.catalog import Feature
from offerrank.learning.contextual.features import INTERCEPT, FeatureDictionary, bucket_labels, level

AGE = Feature(name="person.age", buckets=[25, 40, 60])
COUNTRY = Feature(name="homeAddress.countryCode", max_levels=2)


def test_levels_bucket_numbers_and_name_unknowns():
    assert bucket_labels([25, 40, 60]) == ["<25", "25-40", "40-60", ">=60"]
    assert [level(AGE, raw) for raw in (18, "25", 39.9, 60, "x", None, "", float("nan"))] == [
        "<25",
        "25-40",
        "25-40",
        ">=60",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert level(COUNTRY, "DE") == "DE" and level(COUNTRY, None) == "unknown"
    assert level(None, " mobile ") == "mobile" and level(None, 21.0) == "21" and level(None, "") == "unknown"


def test_dictionary_caps_levels_and_encodes_unseen_as_other():
    dictionary = FeatureDictionary.from_counts(
        [COUNTRY, AGE], {"homeAddress.countryCode": {"DE": 50, "FR": 30, "IT": 5, "unknown": 9}, "person.age": {}}
    )
    assert dictionary.names == (
        INTERCEPT,
        "homeAddress.countryCode=DE",
        "homeAddress.countryCode=FR",
        "homeAddress.countryCode=other",
        "homeAddress.countryCode=unknown",
        "person.age=other",
        "person.age=unknown",
    )
    assert dictionary.active({"homeAddress.countryCode": "IT", "person.age": "<25"}).tolist() == [0, 3, 5]
    assert dictionary.active({"homeAddress.countryCode": "FR"}).tolist() == [0, 2, 6]
