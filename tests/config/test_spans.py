import json

import pytest

from broxy_tray.config._spans import _STRING_RE, SpanMap

SAMPLES = [
    '{"a": 1}',
    '  {\n "a" : [1, 2.5e3, -0, true, false, null, "s\\"q", {"b": {}}, []],\r\n "c\\u00e9": "x"\n}  ',
    '[{"k": "v"}, "\\\\", "a,b]}"]',
    '"just a string"',
    "42",
    json.dumps({"mcpServers": {f"s{i}": {"command": "x", "args": ["a", "b"], "env": {"K": "v"}} for i in range(30)}}, indent=3),
]


def walk(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, path + (i,))


@pytest.mark.parametrize("text", SAMPLES)
def test_every_value_span_reparses_to_the_value(text):
    data = json.loads(text)
    spans = SpanMap(text)
    paths = dict(walk(data))
    assert set(spans.spans) == set(paths)
    for path, value in paths.items():
        span = spans.get(path)
        assert json.loads(text[span.start:span.end]) == value
        if path and isinstance(path[-1], str):
            key_literal = _STRING_RE.match(text, span.key_start)
            assert key_literal is not None and json.loads(key_literal.group()) == path[-1]
        else:
            assert span.key_start is None


def test_key_offsets_point_at_key_literal():
    text = '{\n  "a": {"bé": 1}\n}'
    spans = SpanMap(text)
    assert text[spans.get(("a",)).key_start:].startswith('"a"')
    assert text[spans.get(("a", "bé")).key_start:].startswith('"bé"')
    assert spans.line_col(spans.get(("a", "bé")).start) == (2, 15)


def test_line_col_and_locate_fallback():
    text = '{\n  "a": {\n    "b": 1\n  }\n}'
    spans = SpanMap(text)
    assert spans.locate(("a", "b")) == (3, 10)
    assert spans.locate(("a", "b"), prefer_key=True) == (3, 5)
    assert spans.locate(("a", "missing", "deeper")) == (2, 8), "falls back to the nearest existing parent"
    assert spans.line_col(0) == (1, 1)


def test_members_in_text_order_and_duplicates():
    text = '{"z": 1, "a": {"x": 1}, "m": 2, "a": 3}'
    spans = SpanMap(text)
    assert spans.members(()) == ["z", "m", "a"]
    assert spans.get(("a", "x")) is None, "children of an overridden duplicate are dropped"
