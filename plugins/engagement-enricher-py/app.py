"""engagement-enricher-py: the default enricher rule, written in Python.

The same rule as the Rust `engagement-enricher` (plugins/engagement-enricher),
field for field and bit for bit, built into a WebAssembly component by
componentize-py (see README.md and build.sh). Python's own round() is the
oracle of that rule, so here it is simply called:

    engagement_seconds = round(duration_ms / 1000.0, 3)           if duration_ms is a number >= 0
    engagement_pct     = round(engagement_seconds / length_seconds * 100, 2)
                         if length_seconds is a number > 0 and engagement_seconds is not None

"A number" is what Python's json.loads gives as int or float (never bool).
Only the plugin name differs from the Rust rule, so the host's records say
which implementation produced them.

componentize-py turns the WIT into the `wit_world` package: variants are
dataclasses (Value_Int(5)), options are None or the value, and an error
result is `raise Err(...)` (a `Result` in a list is Ok(...) or Err(...)).
Any other exception is a trap: the event goes to the dead letters, so the
rule never raises on input it can type-check.
"""

import re

from componentize_py_types import Err, Ok

from wit_world import exports
from wit_world.exports.enrich import (
    ColumnSet,
    EnrichError_InvalidField,
    EnrichInput,
    EnricherInfo,
)
from wit_world.imports.types import (
    Column,
    FieldError,
    FieldSpec,
    PluginInfo,
    Value_Float,
    Value_Int,
    Value_Json,
    Value_Null,
    Value_Text,
    ValueKind,
)

NAME = "engagement-enricher-py"
VERSION = "1.0.0"
DESCRIPTION = (
    "Engagement seconds and percentage of content length per event, "
    "with the content's type and length (the original pipeline's rule)."
)

# The columns the rule reads: the host passes only these.
READS = ColumnSet(event=["duration_ms"], content=["content_type", "length_seconds"])

OUTPUT_FIELDS = [
    FieldSpec(
        "content_type",
        ValueKind.TEXT,
        True,
        "Type of the content (podcast, newsletter, video), copied from the content row; "
        "null when the content is missing.",
    ),
    FieldSpec(
        "length_seconds",
        ValueKind.INT,
        True,
        "Length of the content in seconds, copied from the content row; null when unknown.",
    ),
    FieldSpec(
        "engagement_seconds",
        ValueKind.FLOAT,
        True,
        "duration_ms / 1000 rounded to 3 decimals (Python round, half-even); "
        "null when duration_ms is missing or negative.",
    ),
    FieldSpec(
        "engagement_pct",
        ValueKind.FLOAT,
        True,
        "engagement_seconds / length_seconds * 100 rounded to 2 decimals (Python round), "
        "not capped at 100; null when either is unknown or length_seconds <= 0.",
    ),
]

# JSON number grammar: how the host passes an integer beyond 64 bits (value::json).
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

_NULL = Value_Null()


class TooLarge(Exception):
    """An int too large for a float took part in a division (OverflowError)."""


def column(row, name):
    """The value of the first column called `name`, or None when absent."""
    for col in row:
        if col.name == name:
            return col.value
    return None


def number(value):
    """The value as a Python number (int or float), or None."""
    if isinstance(value, (Value_Int, Value_Float)):
        return value.value
    if isinstance(value, Value_Json):
        text = value.value.strip(" \t\n\r")
        match = _JSON_NUMBER.fullmatch(text)
        if match is None:
            return None
        if match.group(1) is None and match.group(2) is None:
            return int(text)
        return float(text)
    return None


def ratio(a, b):
    """a / b, or None where Python raises OverflowError: an int operand too
    large for a float (the original rule failed there)."""
    try:
        return a / b
    except OverflowError:
        return None


def too_large(field, value):
    text = value.value.strip() if isinstance(value, Value_Json) else repr(value)
    digits = len(text.lstrip("-"))
    return Err(
        EnrichError_InvalidField(
            FieldError(
                field=field,
                expected="a number a float can hold (below 1.8e308)",
                found=f"integer {text[:24]}... ({digits} digits)",
            )
        )
    )


def derive(input):
    """The four output columns of one input; raises Err for an unusable int."""
    duration_value = column(input.event, "duration_ms")
    duration = number(duration_value)
    seconds = None
    if duration is not None and duration >= 0:
        quotient = ratio(duration, 1000.0)
        if quotient is None:
            raise too_large("event.duration_ms", duration_value)
        seconds = round(quotient, 3)

    content = input.content
    length_value = column(content, "length_seconds") if content is not None else None
    pct = None
    if seconds is not None:
        length = number(length_value)
        if length is not None and length > 0:
            quotient = ratio(seconds, length)
            if quotient is None:
                raise too_large("content.length_seconds", length_value)
            # (s / length) * 100, left to right as the original: s * 100 / length
            # would round differently.
            pct = round(quotient * 100, 2)

    content_type = column(content, "content_type") if content is not None else None
    return [
        Column("content_type", content_type if isinstance(content_type, Value_Text) else _NULL),
        Column("length_seconds", length_value if isinstance(length_value, Value_Int) else _NULL),
        Column("engagement_seconds", _NULL if seconds is None else Value_Float(seconds)),
        Column("engagement_pct", _NULL if pct is None else Value_Float(pct)),
    ]


class Enrich(exports.Enrich):
    def enrich(self, input: EnrichInput):
        return derive(input)

    def enrich_batch(self, inputs):
        results = []
        for input in inputs:
            try:
                results.append(Ok(derive(input)))
            except Err as err:
                results.append(err)
        return results

    def info(self) -> EnricherInfo:
        return EnricherInfo(
            plugin=PluginInfo(name=NAME, version=VERSION, description=DESCRIPTION),
            output_fields=OUTPUT_FIELDS,
            reads=READS,
        )
