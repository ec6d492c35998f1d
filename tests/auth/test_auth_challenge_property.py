"""Property tests of the WWW-Authenticate parser: it never raises, and quoted values round-trip."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")  # not among the project's test dependencies: skipped where absent

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from broxy_tray.auth import Challenge, bearer_challenge, parse_www_authenticate  # noqa: E402
from broxy_tray.auth._challenge import _parse_value  # noqa: E402

# Keep hypothesis's cache (.hypothesis/) out of the work tree.
try:
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "broxy-tray-hypothesis")
except ImportError:  # pragma: no cover - older hypothesis
    pass

_ALPHABET = st.sampled_from(list('Bb =,"\\\t aer\x00é/+~.-_:') + ["Bearer", "scope", "realm", '="', '\\"'])


@settings(max_examples=400, deadline=None, database=None)
@given(st.one_of(st.text(max_size=200), st.lists(_ALPHABET, max_size=60).map("".join)))
def test_parsing_never_raises(header: str) -> None:
    # The raw parser, not the public wrapper whose safety net would hide a bug.
    challenges = _parse_value(header)
    assert parse_www_authenticate(header) == challenges
    for c in challenges:
        assert c.scheme and c.scheme == c.scheme.lower()
        assert all(k == k.lower() for k in c.params)
    bearer_challenge(header)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        max_size=6,
    )
)
def test_round_trip_of_quoted_parameters(params: dict[str, str]) -> None:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Bearer " + ", ".join(f"{k}={quote(v)}" for k, v in params.items()) + ', Basic realm="r"'
    challenges = parse_www_authenticate(header)
    assert challenges[0] == Challenge("bearer", None, params)
    assert challenges[-1] == Challenge("basic", None, {"realm": "r"})
