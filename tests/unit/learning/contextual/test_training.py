"""Training the contextual model: the catalog's declaration, the schedule, the fit on a known problem, the
parameters a request is scored by."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from offerrank.catalog import AIModel, Feature
from offerrank.learning.contextual.features import FeatureDictionary
from offerrank.learning.contextual.serving import logit_moments
from offerrank.learning.contextual.training import explain, fit_logistic, train

DAY = date(2026, 11, 10)


def contextual_model(**overrides):
    spec = {"name": "ctx", "type": "personalized", "datasets": ["events"], "lookback_days": 7}
    spec |= {"attributes": ["homeAddress.countryCode"], "context": ["device"]} | overrides
    return AIModel(**spec)


def test_catalog_refuses_unknown_context_and_repeated_features():
    with pytest.raises(ValueError, match="unknown context key 'weather'"):
        contextual_model(context=["weather"])
    with pytest.raises(ValueError, match="more than once: device"):
        contextual_model(context=["device", {"name": "device"}])
    with pytest.raises(ValueError, match="ascending"):
        Feature(name="person.age", buckets=[40, 25])
    assert contextual_model().contextual and contextual_model().features[1].name == "device"


def test_weekly_schedule_trains_on_mondays_or_when_a_week_old():
    weekly = contextual_model(schedule="weekly")
    monday, thursday = date(2026, 11, 9), date(2026, 11, 12)
    assert weekly.trains_on(monday, date(2026, 11, 8)) and weekly.trains_on(thursday, None)
    assert not weekly.trains_on(thursday, monday) and weekly.trains_on(thursday, date(2026, 11, 5))
    assert contextual_model().trains_on(thursday, thursday)


def test_fit_recovers_known_logistic_weights():
    rng = np.random.default_rng(3)
    design = np.array([[1, a, b] for a in (0, 1) for b in (0, 1)], float)
    truth = np.array([-3.0, 1.0, -0.5])
    impressions = np.full(4, 200_000.0)
    conversions = rng.binomial(200_000, 1 / (1 + np.exp(-design @ truth))).astype(float)
    mean, covariance = fit_logistic(design, impressions, conversions, np.array([1e-4, 1.0, 1.0]))
    assert np.allclose(mean, truth, atol=0.05)
    assert covariance.shape == (3, 3) and (np.diag(covariance) > 0).all() and np.diag(covariance).max() < 1e-3


def cells(rates: dict[tuple[str, str, str], float], shown: int = 4000) -> pd.DataFrame:
    """Cells of one day where offer x country x device converts at the given rate (exact counts)."""
    return pd.DataFrame(
        [
            (
                DAY,
                "hero",
                "web",
                offer,
                [f"homeAddress.countryCode={country}", f"device={device}"],
                shown,
                round(shown * rate),
            )
            for (offer, country, device), rate in rates.items()
        ],
        columns=["event_date", "placement_id", "channel", "offer_id", "features", "impressions", "conversions"],
    )


def test_training_finds_the_best_offer_per_context_and_leaves_thin_offers_out():
    rates = {}
    for country in ("DE", "FR"):
        for device in ("mobile", "desktop"):
            rates[("de-offer", country, device)] = 0.08 if country == "DE" else 0.02
            rates[("mobile-offer", country, device)] = 0.06 if device == "mobile" else 0.01
    frame = pd.concat([cells(rates), cells({("thin", "DE", "mobile"): 0.1}, shown=100)])
    parameters = train(frame, contextual_model(), DAY)
    assert sorted(parameters["offer_id"]) == ["de-offer", "mobile-offer"]  # thin: 100 impressions < 250
    dictionary = FeatureDictionary(tuple(parameters["features"].iloc[0]))
    weights = np.stack(parameters["weights"].map(np.asarray))
    covariance = np.stack([np.asarray(c).reshape(len(dictionary), -1) for c in parameters["covariance"]])
    best = {}
    for country in ("DE", "FR"):
        for device in ("mobile", "desktop"):
            active = dictionary.active({"homeAddress.countryCode": country, "device": device})
            mean, sd = logit_moments(weights, covariance, active)
            best[(country, device)] = parameters["offer_id"].iloc[int(np.argmax(mean))]
            assert (sd > 0).all() and (sd < 0.5).all()
    assert best == {
        ("DE", "mobile"): "de-offer",
        ("DE", "desktop"): "de-offer",
        ("FR", "mobile"): "mobile-offer",
        ("FR", "desktop"): "de-offer",
    }
    unseen = dictionary.active({"homeAddress.countryCode": "JP"})  # other country, unknown device
    assert np.isfinite(logit_moments(weights, covariance, unseen)[0]).all()
    reasons = explain(list(dictionary.names), parameters["weights"].iloc[0], parameters["covariance"].iloc[0])
    assert reasons[0]["feature"] == "homeAddress.countryCode=DE" and reasons[0]["low"] > 0


def test_training_without_cells_in_the_window_gives_no_parameters():
    assert train(
        cells({("a", "DE", "mobile"): 0.1}).assign(event_date=date(2026, 10, 1)), contextual_model(), DAY
    ).empty


def test_catalog_caps_model_columns_and_wants_one_declaration_per_attribute():
    with pytest.raises(ValueError, match="at most 256"):
        contextual_model(attributes=[{"name": f"a.f{i}", "max_levels": 60} for i in range(5)])
    assert len(contextual_model(segments=["loyal"]).features) == 3  # the segment is one more feature
    from offerrank.catalog import build_catalog

    def model(name, attribute):
        return {"name": name, "type": "personalized", "datasets": ["events"], "attributes": [attribute]}

    data = {
        "datasets": [{"name": "events", "path": "/tmp"}],
        "ai_models": [model("m1", {"name": "person.age", "buckets": [30]}), model("m2", "person.age")],
    }
    with pytest.raises(ValueError, match="'person.age' is declared otherwise by AI model 'm1'"):
        build_catalog(data, "catalog.yaml")


def test_catalog_bounds_the_prior_sd_from_below():
    from offerrank.catalog import Personalization

    with pytest.raises(ValueError, match="greater than or equal to 0.01"):
        Personalization(prior_sd=1e-200)
    assert Personalization(prior_sd=0.01).prior_sd == 0.01


def test_a_fit_without_a_usable_posterior_fails_naming_its_offer():
    from offerrank.catalog import Personalization
    from offerrank.learning.contextual.training import TrainingFailed

    design, counts = np.array([[1.0, 1.0], [1.0, 0.0]]), np.array([100.0, 100.0])
    with pytest.raises(TrainingFailed, match="non-finite prior precision"):
        fit_logistic(design, counts, counts / 10, np.array([1e-2, np.inf]))
    with pytest.raises(np.linalg.LinAlgError):  # a column no cell sets and no prior: a singular Hessian
        fit_logistic(np.array([[1.0, 0.0]]), counts[:1], counts[:1] / 10, np.zeros(2))
    # a prior sd stored before the bound (1e-200): its precision overflows; refused, not a crash or a NaN posterior
    tiny = contextual_model().model_copy(update={"personalization": Personalization.model_construct(prior_sd=1e-200)})
    with pytest.raises(TrainingFailed, match=r"offer de-offer on hero \(web\): non-finite prior precision"):
        train(cells({("de-offer", "DE", "mobile"): 0.1}), tiny, DAY)


def test_explain_ranks_the_true_driver_of_a_simulated_world_first():
    """A world where offer-fr's only lift is country = FR (x3): FR's effect comes first, its interval above 0,
    and no device level's interval excludes 0."""
    from offerrank.sim.simulator import World

    world = World.model_validate(
        {
            "start": "2026-11-01",
            "requests_per_day": 20_000,
            "segments": {"all": 1.0},
            "attributes": {"homeAddress.countryCode": {"FR": 0.2, "DE": 0.3, "US": 0.3, "GB": 0.2}},
            "context": {"device": {"mobile": 0.6, "desktop": 0.3, "tablet": 0.1}},
            "placements": [{"id": "hero", "channel": "web", "share": 1.0, "model": "ctx"}],
            "offers": [
                {"id": "offer-fr", "placements": ["hero"], "rate": 0.02, "lifts": {"homeAddress.countryCode=FR": 3}}
            ],
        }
    )
    rng, offer, rows = np.random.default_rng(21), world.offers[0], []
    for number in range(1, 8):
        for country, country_share in world.attributes["homeAddress.countryCode"].items():
            for device, device_share in world.context["device"].items():
                shown = rng.poisson(world.requests_per_day * country_share * device_share)
                rate = world.true_rate(offer, "all", number, {"homeAddress.countryCode": country, "device": device})
                features = [f"homeAddress.countryCode={country}", f"device={device}"]
                rows.append((world.day(number), "hero", "web", offer.id, features, shown, rng.binomial(shown, rate)))
    columns = ["event_date", "placement_id", "channel", "offer_id", "features", "impressions", "conversions"]
    parameters = train(pd.DataFrame(rows, columns=columns), contextual_model(), world.day(7)).iloc[0]
    reasons = explain(list(parameters["features"]), parameters["weights"], parameters["covariance"], top=20)
    first = reasons[0]
    assert first["feature"] == "homeAddress.countryCode=FR" and 0 < first["low"] < first["effect"] < first["high"]
    assert first["effect"] > 2 * max(abs(r["effect"]) for r in reasons[1:])
    assert all(r["low"] < 0 < r["high"] for r in reasons if r["feature"].startswith("device="))
