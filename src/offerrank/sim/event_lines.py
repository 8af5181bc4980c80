"""The event files of the sample generator and the simulator: XDM proposition-interaction events as JSON lines (in
the contract of `shared/events/README.md`), streamed into one folder per date (`EventWriter`), and the faults a
generator injects into a copy of a valid line (`FAULT_KINDS`: each one bad record, which ingest must quarantine or
collapse).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

CHANNEL_TYPE_PREFIX = "https://ns.adobe.com/xdm/channel-types/"

FAULT_KINDS = (
    "exact_duplicate",
    "conflicting_duplicate",
    "malformed_json",
    "not_an_object",
    "missing_id",
    "missing_timestamp",
    "future_timestamp",
    "event_type_mismatch",
    "unknown_event_type",
    "no_propositions",
    "item_without_id",
    "missing_identity",
)


class EventWriter:
    """Streams JSON lines into per-date files (one file per generation day in each folder), counting them."""

    def __init__(self, events_dir: Path, seed: int):
        self.events_dir = events_dir
        self.seed = seed & 0xFFFFFFFF
        self.handles: dict[tuple[str, str], TextIO] = {}
        self.lines_per_date: Counter = Counter()
        self.counter = 0

    def new_id(self, variant: str) -> str:
        """A UUID-shaped id, unique within this generation and deterministic for the seed."""
        self.counter += 1
        n = self.counter
        return (
            f"{self.seed:08x}-{(n >> 48) & 0xFFFF:04x}-4{(n >> 36) & 0xFFF:03x}-{variant}{(n >> 24) & 0xFFF:03x}-"
            f"{n & 0xFFFFFFFFFFFF:012x}"
        )

    def add(self, folder_date: str, source: str, line: str) -> None:
        handle = self.handles.get((folder_date, source))
        if handle is None:
            folder = self.events_dir / folder_date
            folder.mkdir(parents=True, exist_ok=True)
            handle = self.handles[(folder_date, source)] = open(folder / f"{source}.jsonl", "w", encoding="utf-8")
        handle.write(line)
        handle.write("\n")
        self.lines_per_date[folder_date] += 1

    def close(self) -> dict[str, int]:
        for handle in self.handles.values():
            handle.close()
        return dict(sorted(self.lines_per_date.items()))


def event_json(
    event_id: str, ts: datetime, kind: str, ecid: str | None, channel: str, propositions: str, device: str | None = None
) -> str:
    event_type, prop_type = (
        ("decisioning.propositionDisplay", '{"display":1}')
        if kind == "display"
        else ("decisioning.propositionInteract", '{"interact":1}')
    )
    identity = f',"identityMap":{{"ECID":[{{"id":"{ecid}","primary":true}}]}}' if ecid else ""
    device_type = f',"device":{{"type":"{device}"}}' if device else ""
    return (
        f'{{"_id":"{event_id}","timestamp":"{iso(ts)}","eventType":"{event_type}"{identity},'
        f'"channel":{{"_type":"{CHANNEL_TYPE_PREFIX}{channel}"}}{device_type},'
        f'"_experience":{{"decisioning":{{"propositionEventType":{prop_type},"propositions":[{propositions}]}}}}}}'
    )


def proposition_json(
    proposition_id: str, placement_id: str, decision_id: str, items: list[tuple[str, str, str, float]]
) -> str:
    item_json = ",".join(
        f'{{"id":"{offer_id}","name":"{name}","itemSelection":{{"rankingDetail":'
        f'{{"trafficType":"{traffic}","propensity":{propensity:.6g}}}}}}}'
        for offer_id, name, traffic, propensity in items
    )
    return (
        f'{{"id":"{proposition_id}","scope":"{placement_id}","scopeDetails":{{"decisionProvider":"AJO",'
        f'"placement":{{"id":"{placement_id}"}},"decisionPolicy":{{"id":"{decision_id}"}}}},"items":[{item_json}]}}'
    )


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def faulty_variant(kind: str, line: str, fresh_id: str, future: datetime) -> str:
    """A fault of `kind` derived from a valid event line (the valid event is kept as well).

    Duplicates reuse the event's id; every other fault gets `fresh_id`, so it is one bad record only.
    """
    event = json.loads(line)
    if kind == "exact_duplicate":
        return line
    if kind == "conflicting_duplicate":
        later = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")) + timedelta(seconds=1)
        return json.dumps({**event, "timestamp": iso(later)}, separators=(",", ":"))
    event["_id"] = fresh_id
    if kind == "malformed_json":
        text = json.dumps(event, separators=(",", ":"))
        return text[: len(text) // 2]
    if kind == "not_an_object":
        return json.dumps([event])
    decisioning = event["_experience"]["decisioning"]
    if kind == "missing_id":
        del event["_id"]
    elif kind == "missing_timestamp":
        del event["timestamp"]
    elif kind == "future_timestamp":
        event["timestamp"] = iso(future)
    elif kind == "event_type_mismatch":
        flipped = "interact" if "display" in decisioning["propositionEventType"] else "display"
        decisioning["propositionEventType"] = {flipped: 1}
    elif kind == "unknown_event_type":
        event["eventType"] = "decisioning.propositionHover"
    elif kind == "no_propositions":
        decisioning["propositions"] = []
    elif kind == "item_without_id":
        del decisioning["propositions"][0]["items"][0]["id"]
    elif kind == "missing_identity":
        del event["identityMap"]
    return json.dumps(event, separators=(",", ":"))
