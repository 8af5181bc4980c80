"""The serving policy of an AI-ranked list, decided per request: what Adobe's auto-optimization serves.

With probability ε (the model's exploration share) the request gets a random order of the servable offers
(`traffic_type = random`); otherwise one Thompson draw from each offer's Beta posterior orders them (`traffic_type
= model`). While some of a list's offers are in cold start and others are not, the model's cold-start thresholds
split them as the published traffic shares do: random traffic shows the cold-start offers first (a random order of
them, then of the others) and a Thompson draw ranks the offers past cold start first (then the cold-start ones).
A draw reads the posterior's quantile table (`offerrank.learning.bandit.posterior_table`: 256 quantiles,
linear in between, built once per list): a few microseconds a request where numpy's Beta sampler takes about 15,
and the slot probabilities come from the same sampler. Every served slot carries its propensity: the probability
that this policy puts that offer in that slot, ε · P(random traffic puts it there: 1 / K without a cold-start split)
+ (1 − ε) · P(the Thompson order puts it there), which is what
a channel logs so that reports and off-policy evaluation can weigh each impression. Pure numpy and scipy: no I/O.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np

from offerrank.learning.bandit import DRAWS, QUANTILES

RANDOM, MODEL = "random", "model"
_CHUNK = 2_000  # Monte-Carlo draws per batch: bounds the scratch memory of a long list
# Posterior samples per list at most: a list of 200 offers gets 5,000 draws (about 50 ms, standard error at most
# 0.7 points), so a lookup's first answer of a long list is not held up for the 20,000 the ranking uses.
_SAMPLES = 1_000_000
MIN_PROPENSITY = 1 / DRAWS
_generators = threading.local()


@dataclass(frozen=True)
class Decision:
    """One request's order of a list: positions into its servable offers, and per position its propensity."""

    order: np.ndarray
    traffic_type: str
    propensity: np.ndarray


def request_generator(*parts: object) -> np.random.Generator:
    """A generator whose draws are fixed by `parts` (request id, placement, channel, ranking version).

    The thread's own PCG64 is set to a 128-bit state and an odd increment taken from SHA-256 of the parts: a few
    microseconds, where building a seeded Generator (SeedSequence) costs about ten times that per request."""
    held = getattr(_generators, "held", None)
    if held is None:  # the thread's generator, and the state dict it is set from (the setter copies it)
        state: dict[str, object] = {"bit_generator": "PCG64", "state": None, "has_uint32": 0, "uinteger": 0}
        held = _generators.held = np.random.Generator(np.random.PCG64()), state
    generator, state = held
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    state["state"] = {"state": int.from_bytes(digest[:16], "little"), "inc": int.from_bytes(digest[16:], "little") | 1}
    generator.bit_generator.state = state
    return generator


def thompson_draws(rng: np.random.Generator, table: np.ndarray, draws: int) -> np.ndarray:
    """`draws` samples of each posterior of `table` (draws x offers): inverse CDF, linear between quantiles."""
    offers = table.shape[0]
    position = rng.random((draws, offers)) * (QUANTILES - 1)
    below = position.astype(np.intp)
    flat, start = table.ravel(), np.arange(offers) * QUANTILES + below
    low = flat[start]
    return low + (position - below) * (flat[start + 1] - low)


def slot_probabilities(table: np.ndarray, slots: int, seed: int, draws: int | None = None) -> np.ndarray:
    """P(offer i is in slot j of one Thompson draw) from the posteriors' quantile `table`: an (offers x slots)
    matrix by Monte-Carlo (`draws`: 20,000, fewer for lists of more than 50 offers), `slots` at most the number of
    offers. Column 0 is P(best)."""
    offers = table.shape[0]
    slots = min(slots, offers)
    draws = draws or max(_CHUNK, min(DRAWS, _SAMPLES // offers))
    rng, counts = np.random.default_rng(seed), np.zeros(offers * slots)
    for start in range(0, draws, _CHUNK):
        samples = thompson_draws(rng, table, min(_CHUNK, draws - start))
        top = (
            np.argpartition(-samples, slots - 1, axis=1)[:, :slots]
            if slots < offers
            else np.tile(np.arange(offers), (len(samples), 1))
        )
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(samples, top, 1), axis=1), 1)
        counts += np.bincount((order * slots + np.arange(slots)).ravel(), minlength=offers * slots)
    return (counts / draws).reshape(offers, slots)


def contender_slot_probabilities(table: np.ndarray, slots: int, seed: int) -> np.ndarray:
    """`slot_probabilities` with a budget for one request's cell: offers whose highest quantile is below the
    `slots`-th highest lowest quantile can never reach a slot and get 0 without being drawn, and the others share
    about 100,000 samples (at least 2,000 draws)."""
    offers = table.shape[0]
    slots = min(slots, offers)
    kth_lowest = np.partition(table[:, 0], offers - slots)[offers - slots]
    contenders = np.flatnonzero(table[:, -1] >= kth_lowest)
    in_slot = np.zeros((offers, slots))
    draws = max(_CHUNK, min(DRAWS, 100_000 // len(contenders)))
    in_slot[contenders] = slot_probabilities(table[contenders], slots, seed, draws)
    return in_slot


def _shuffled(rng: np.random.Generator, offers: int, slots: int) -> np.ndarray:
    return rng.permutation(offers)[:slots]


def random_order(rng: np.random.Generator, offers: int, slots: int) -> Decision:
    """A uniformly random order: every offer is in every slot with probability 1 / offers."""
    order = _shuffled(rng, offers, slots)
    return Decision(order, RANDOM, np.full(len(order), 1.0 / offers))


@dataclass(frozen=True)
class Contenders:
    """The offers of a list that a Thompson draw puts in its first slots: those the Monte-Carlo of
    `slot_probabilities` ever put there, with their posteriors' quantile tables. An offer it never did has a chance
    below 1 / draws (under `MIN_PROPENSITY`, the least propensity logged); leaving it out of each request's draw
    keeps a long list's draw short (10 of 200 offers shown: about 80 contenders)."""

    offers: np.ndarray  # positions in the list
    table: np.ndarray
    # What one request's draw reads, made once: each contender's first cell in the flat quantiles, negated so that
    # the draw sorts from best to worst as it is (negation is exact: the same order as `thompson_draws`).
    _first: np.ndarray = field(init=False, repr=False, compare=False)
    _negated: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_first", np.arange(len(self.table)) * QUANTILES)
        object.__setattr__(self, "_negated", np.ascontiguousarray(-np.asarray(self.table, dtype=float)).ravel())

    @classmethod
    def of(cls, table: np.ndarray, in_slot: np.ndarray) -> Contenders:
        offers = np.flatnonzero(in_slot.sum(axis=1) > 0)
        return cls(offers, table[offers])

    def draw_order(self, rng: np.random.Generator, slots: int) -> np.ndarray:
        """The list positions of the first `slots` offers of one Thompson draw, best first: the order of
        `thompson_draws(rng, self.table, 1)` (the same numbers from the same generator state, negated exactly)."""
        position = rng.random(len(self._first)) * (QUANTILES - 1)
        below = position.astype(np.intp)
        at = self._first + below
        low = self._negated.take(at)
        negated = low + (position - below) * (self._negated.take(at + 1) - low)
        return self.offers.take(negated.argsort()[:slots])


class ServingPolicy:
    """What every request's decision of one served list reads, made at the list's first policy answer: its
    contenders, exploration share and slots, and the propensity of every offer in every slot
    (`serving_probability` of the list's slot probabilities, as Python floats)."""

    __slots__ = ("contenders", "exploration_share", "offers", "slots", "_explored_first", "_propensity")

    def __init__(
        self,
        contenders: Contenders,
        exploration_share: float,
        in_slot: np.ndarray,
        slots: int,
        explored_first: np.ndarray | None = None,
    ):
        """`explored_first`: the positions random traffic shows first (the cold-start offers), None: no such split."""
        self.contenders, self.exploration_share, self.slots = contenders, exploration_share, slots
        self.offers = len(in_slot)
        self._explored_first = explored_first
        explore = random_slot_probability(self.offers, in_slot.shape[1], explored_first)
        self._propensity: list[list[float]] = serving_probability(
            in_slot, exploration_share, self.offers, explore=explore
        ).tolist()

    def decide(self, rng: np.random.Generator) -> tuple[list[int], str, list[float]]:
        """One request's order of the list's offers: random with probability `exploration_share`, else one Thompson
        draw from the contenders' posteriors. Returns (list positions in serving order, traffic type, the propensity
        of each served position)."""
        if rng.random() < self.exploration_share:
            order, traffic_type = self._random_order(rng), RANDOM
        else:
            order, traffic_type = self.contenders.draw_order(rng, self.slots).tolist(), MODEL
        propensity = self._propensity
        return order, traffic_type, [propensity[at][slot] for slot, at in enumerate(order)]

    def _random_order(self, rng: np.random.Generator) -> list[int]:
        if self._explored_first is None:
            return _shuffled(rng, self.offers, self.slots).tolist()
        first = self._explored_first
        others = np.setdiff1d(np.arange(self.offers), first)
        return np.concatenate([rng.permutation(first), rng.permutation(others)])[: self.slots].tolist()


def split_by_cold_start(
    table: np.ndarray, cold: np.ndarray, exploration_share: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """A list's quantile `table` and the positions random traffic shows first, given which offers are in cold start:
    while some are and others are not, every draw of an offer past cold start beats every cold-start draw (its
    quantiles lifted by 1, above any probability) and random traffic shows the cold-start offers first; else the
    table as it is and no split. Without an exploration share there is no random traffic to carry the cold-start
    offers, so they compete by their posteriors (never starved). The lookup and off-policy evaluation both serve a
    list through this."""
    if exploration_share > 0 and cold.any() and not cold.all():
        return table + (~cold)[:, None], np.flatnonzero(cold)
    return table, None


def random_slot_probability(offers: int, slots: int, explored_first: np.ndarray | None = None) -> np.ndarray:
    """P(random traffic puts offer i in slot j), an (offers x slots) matrix: 1 / offers; with `explored_first`, a
    random order of those positions, then of the others."""
    slots = min(slots, offers)
    if explored_first is None:
        return np.full((offers, slots), 1.0 / offers)
    first = np.zeros(offers, bool)
    first[explored_first] = True
    count = int(first.sum())
    slot = np.arange(slots)
    in_first = (slot < count) / max(count, 1)
    in_others = (slot >= count) / max(offers - count, 1)
    return np.where(first[:, None], in_first[None, :], in_others[None, :])


def serving_probability(
    in_slot: np.ndarray,
    exploration_share: float,
    offers: int,
    floor: float = MIN_PROPENSITY,
    explore: np.ndarray | None = None,
) -> np.ndarray:
    """P(the policy puts an offer in a slot) from `in_slot`, P(a Thompson draw puts it there), for a list of
    `offers`: exploration_share * P(random traffic puts it there: `explore`, by default 1 / offers) +
    (1 - exploration_share) * in_slot (element-wise), at least `floor`.
    A logged propensity keeps the floor (an estimate of 0 for what was just drawn means "below the Monte-Carlo's
    resolution", never impossible); a candidate's probabilities in off-policy evaluation take none, so each slot's
    sum stays 1."""
    random = 1.0 / offers if explore is None else explore
    return np.maximum(exploration_share * random + (1 - exploration_share) * in_slot, floor)
