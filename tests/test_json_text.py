"""The task records' JSON (tilefleet.engine.json_text): read exactly as the standard library
reads it, whatever the text, and written so that SQLite's JSON functions read it back."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

from tilefleet.engine.json_text import decode, encode_record

TEXTS = [
    '{"id": "t1", "n": 3, "x": 0.30000000000000004, "ok": true, "none": null}',
    '{"big": 12345678901234567890123, "neg": -98765432109876543210}',  # past 64 bits
    '{"u64": 18446744073709551615, "i64": -9223372036854775808}',
    '{"value": NaN, "up": Infinity, "down": -Infinity}',  # as json.dumps writes them
    '{"huge": 1e400}',
    '{"s": "\\ud800 lone", "e": "é\\"quoted\\"", "id": "t00000000000000000000001"}',
    '[1, [2, {"a": [3.5e-7, 1e16]}], "x"]',
    '{"a": 1, "a": 2}',
]


@pytest.mark.parametrize("text", TEXTS)
def test_decode_reads_what_the_standard_library_reads(text):
    expected, got = json.loads(text), decode(text)
    assert json.dumps(got) == json.dumps(expected)  # NaN != NaN, so compared as text
    assert _types(got) == _types(expected)  # an int stays an int, past 64 bits too


def test_decode_refuses_what_is_no_json_as_the_standard_library_does():
    for text in ("", "{", '{"a": 1,}', "nul"):
        with pytest.raises(json.JSONDecodeError):
            decode(text)


def test_records_are_json_that_sqlite_reads_back_and_decode_returns():
    db = sqlite3.connect(":memory:")
    values = [
        {"n": float("nan"), "x": 1},
        {"n": float("-inf"), "x": 2**70},  # the standard library's path, still no NaN
        {"seed": np.int64(7), "scale": np.float32(0.5), 3: "int key", True: "bool key"},
        {"nested": [1.5, {"deep": float("inf")}], "e": "é"},
    ]
    for value in values:
        text = encode_record(value)
        assert db.execute("SELECT json_valid(?)", (text,)).fetchone() == (1,), text
        back = decode(text)
        assert back == json.loads(text)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(back))
    assert decode(encode_record(values[1])) == {"n": None, "x": 2**70}
    assert decode(encode_record(values[2])) == {"seed": 7, "scale": 0.5, "3": "int key",
                                                "true": "bool key"}  # fmt: skip


def _types(value):
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
