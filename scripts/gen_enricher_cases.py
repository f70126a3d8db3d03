#!/usr/bin/env python3
"""Writes plugins/engagement-enricher/cases.ndjson: enricher test cases whose
expected values are computed by CPython running the original pipeline's rule,
so that Python's real round() is the oracle the Rust plugins are held to.

One JSON object per line:
    {"name": ..., "event": {column: value}, "content": {column: value} | null,
     "expected": {"content_type", "length_seconds", "engagement_seconds", "engagement_pct"}}

Deterministic (fixed seed, no clock): running it again rewrites the same bytes.
Standard library only. Usage: python3 scripts/gen_enricher_cases.py [OUT]
"""

import json
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20240501
OUT = Path(__file__).resolve().parent.parent / "plugins" / "engagement-enricher" / "cases.ndjson"

BASE_TS = datetime(2025, 1, 6, 9, 0, 0, tzinfo=timezone.utc)
DEVICES = ["ios", "android", "web-chrome", "web-safari", "web-firefox", "desktop"]
EVENT_TYPES = ["play", "pause", "finish", "click"]
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


# --- The oracle: the original rule, as the Python pipeline computed it. ---

def is_number(value):
    # bool is an int subclass in Python; the rule does not count it.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def copied(value, kind):
    # The one deliberate difference from the original, which copied any value:
    # the plugin declares content_type text and length_seconds int, and copies
    # a value only when it has that kind (PostgreSQL TEXT/INTEGER columns
    # always do; anything else would be rejected by the BigQuery schema).
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def original_rule(event, content):
    duration_ms = event.get("duration_ms")
    if is_number(duration_ms) and duration_ms >= 0:
        engagement_seconds = round(duration_ms / 1000.0, 3)
    else:
        engagement_seconds = None
    row = content or {}
    length_seconds = row.get("length_seconds")
    if engagement_seconds is not None and is_number(length_seconds) and length_seconds > 0:
        engagement_pct = round(engagement_seconds / length_seconds * 100, 2)
    else:
        engagement_pct = None
    return {
        "content_type": copied(row.get("content_type"), str),
        "length_seconds": copied(length_seconds, int),
        "engagement_seconds": engagement_seconds,
        "engagement_pct": engagement_pct,
    }


# --- Rows shaped like the decoded PostgreSQL rows. ---

class Rows:
    def __init__(self, rng):
        self.rng = rng
        self.next_event_id = 1
        self.next_content = 1

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ts(self):
        moment = BASE_TS + timedelta(microseconds=self.rng.randrange(0, 30 * 86400 * 10**6))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def content(self, content_type, length_seconds, **overrides):
        n = self.next_content
        self.next_content += 1
        row = {
            "id": self.uuid(),
            "slug": f"content-{n}",
            "title": f"Content {n}",
            "content_type": content_type,
            "length_seconds": length_seconds,
            "publish_ts": self.ts(),
        }
        row.update(overrides)
        return row

    def event(self, duration_ms, event_type="play", content=None, payload_as_object=False, **overrides):
        event_id = self.next_event_id
        self.next_event_id += 1
        ts = self.ts()
        payload = {"session_id": self.uuid(), "user_agent": "Mozilla/5.0", "timestamp": ts}
        if event_type == "click":
            payload["click_position"] = {"x": self.rng.randrange(1920), "y": self.rng.randrange(1080)}
        row = {
            "id": event_id,
            "content_id": content["id"] if content else self.uuid(),
            "user_id": self.uuid(),
            "event_type": event_type,
            "event_ts": ts,
            "duration_ms": duration_ms,
            "device": self.rng.choice(DEVICES),
            # Debezium sends JSONB as a JSON string; a few cases send an object
            # to exercise value::json.
            "raw_payload": payload if payload_as_object else json.dumps(payload),
        }
        row.update(overrides)
        return row


def case(name, event, content):
    return {"name": name, "event": event, "content": content, "expected": original_rule(event, content)}


def without(row, column):
    return {k: v for k, v in row.items() if k != column}


def fixed_cases(rows):
    out = []

    def add(name, duration_ms, content, **event_overrides):
        event = rows.event(duration_ms, content=content, **event_overrides)
        out.append(case(name, event, content))

    video = lambda length: rows.content("video", length)  # noqa: E731
    # Ties.
    add("tie_pct_1500ms_of_1200s", 1500, video(1200))
    add("seconds_125ms", 125, video(1200))
    add("seconds_125ms_of_100s", 125, video(100))
    add("tie_pct_3ms_of_24s", 3, video(24))  # 0.0125 % in reals
    add("tie_pct_45000ms_of_3600s", 45000, video(3600))  # 1.25 %
    add("tie_pct_2675ms_of_100s", 2675, video(100))  # 2.675 %
    add("tie_pct_1005ms_of_100s", 1005, video(100))  # 1.005 %
    add("tie_pct_8345ms_of_100s", 8345, video(100))  # 8.345 %
    # Duration edge values.
    add("duration_zero", 0, video(600))
    add("duration_null", None, video(600), event_type="finish")
    add("duration_negative", -1500, video(600))
    add("duration_minus_one", -1, video(600))
    content = video(600)
    out.append(case("duration_missing", without(rows.event(None, content=content), "duration_ms"), content))
    add("duration_text", "1500", video(600))
    add("duration_bool_true", True, video(600))
    add("duration_bool_false", False, video(600))
    add("duration_object", {"ms": 1500}, video(600))
    add("duration_array", [1500], video(600))
    add("duration_float", 1500.5, video(600))
    add("duration_float_half_ms", 0.5, video(600))
    add("duration_float_1_5ms", 1.5, video(600))
    add("duration_float_2_5ms", 2.5, video(600))
    add("duration_float_999_9995", 999.9995, video(600))
    add("duration_float_fraction", 1234.5678, video(600))
    add("duration_float_negative_zero", -0.0, video(600))
    add("duration_float_negative", -0.5, video(600))
    add("duration_float_tiny", 1e-9, video(600))
    add("duration_float_huge", 1e20, video(600))
    add("duration_float_integral", 3000.0, video(60))
    # Length edge values.
    add("length_null", 30000, video(None))
    add("length_zero", 30000, video(0))
    add("length_negative", 30000, video(-60))
    add("length_text", 30000, video("1200"))
    add("length_bool", 30000, video(True))
    add("length_float", 30000, video(1200.5))
    add("length_float_integral", 30000, video(1200.0))
    missing_length = without(rows.content("podcast", 1800), "length_seconds")
    add("length_missing", 30000, missing_length)
    add("content_missing", 30000, None)
    add("content_missing_no_duration", None, None, event_type="click")
    add("content_missing_negative_duration", -5, None)
    add("newsletter", 30000, rows.content("newsletter", None))
    add("newsletter_click", None, rows.content("newsletter", None), event_type="click")
    add("content_type_null", 30000, rows.content(None, 900))
    add("content_type_missing", 30000, without(rows.content("video", 900), "content_type"))
    add("content_type_not_text", 30000, rows.content(7, 900))
    # Huge values.
    add("huge_duration_length_1", 2147483647, video(1))
    add("huge_duration_length_300", 2147483647, video(300))
    add("huge_length", 1000, video(2147483647))
    add("i64_max_duration", I64_MAX, video(1))
    add("i64_min_duration", I64_MIN, video(1))
    add("i64_max_length", 300000, video(I64_MAX))
    add("tiny_pct", 1, video(7200))
    add("over_100_pct", 7200000, video(3600))
    add("exactly_100_pct", 3600000, video(3600))
    add("raw_payload_object", 60000, video(600), payload_as_object=True)
    add("click_no_duration", None, video(600), event_type="click")
    return out


def random_cases(rows, rng, count):
    """Realistic ranges: duration 1000..300000 ms, length 300..7200 s."""
    out = []
    for i in range(count):
        content = rows.content(rng.choice(["podcast", "video"]), rng.randint(300, 7200))
        event = rows.event(rng.randint(1000, 300000), event_type=rng.choice(["play", "pause"]), content=content)
        out.append(case(f"random_{i:03}", event, content))
    return out


def generator_like_cases(rows, rng, count):
    """As the original data generator makes them: typed lengths, null
    durations for finish/click, newsletters without a length."""
    out = []
    for i in range(count):
        content_type = rng.choice(["podcast", "newsletter", "video"])
        length = {"podcast": (1200, 7200), "video": (300, 3600)}.get(content_type)
        content = rows.content(content_type, rng.randint(*length) if length else None)
        event_type = rng.choice(EVENT_TYPES)
        duration = rng.randint(1000, 300000) if event_type in ("play", "pause") else None
        event = rows.event(duration, event_type=event_type, content=content)
        out.append(case(f"generator_{i:03}", event, content))
    return out


def pct_tie_cases(rows, rng, count):
    """engagement_pct = d / (10 L) exactly in reals, so it sits on a tie at two
    decimals (x.xx5) when 20 d / L is odd. Pick such (d, L) and let the binary
    arithmetic decide the direction, as it did in Python."""
    out = []
    while len(out) < count:
        length = rng.randint(300, 7200)
        # d = (2k + 1) L / 20 must be a whole number of milliseconds.
        k = rng.randint(0, 300000 * 20 // length // 2)
        if ((2 * k + 1) * length) % 20:
            continue
        duration = (2 * k + 1) * length // 20
        if not 1 <= duration <= 300000:
            continue
        content = rows.content(rng.choice(["podcast", "video"]), length)
        event = rows.event(duration, content=content)
        out.append(case(f"pct_tie_{len(out):03}_{duration}ms_of_{length}s", event, content))
    return out


def seconds_tie_cases(rows, rng, count):
    """Fractional durations n + 0.5 ms: duration / 1000 ends in 5 at the fourth
    decimal, a tie for round(_, 3) in reals."""
    out = []
    for i in range(count):
        duration = rng.randint(0, 300000) + 0.5
        content = rows.content("video", rng.randint(300, 3600))
        event = rows.event(duration, content=content)
        out.append(case(f"seconds_tie_{i:03}_{duration}ms", event, content))
    return out


def main():
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    rng = random.Random(SEED)
    rows = Rows(rng)
    cases = (
        fixed_cases(rows)
        + random_cases(rows, rng, 200)
        + generator_like_cases(rows, rng, 60)
        + pct_tie_cases(rows, rng, 160)
        + seconds_tie_cases(rows, rng, 60)
    )
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for c in cases:
            # allow_nan=False: NaN/Infinity are not JSON; no case may need them.
            f.write(json.dumps(c, allow_nan=False) + "\n")
    print(f"wrote {len(cases)} cases to {out_path}")


if __name__ == "__main__":
    main()
