import pytest

from broxy_tray.config._expand import ExpansionError, expand

ENV = {"A": "alpha", "EMPTY": "", "PATHY": "/x/y"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("${A}", "alpha"),
        ("pre-${A}-post", "pre-alpha-post"),
        ("${A}${A}", "alphaalpha"),
        ("${PATHY}/work", "/x/y/work"),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),  # POSIX :- also covers set-but-empty
        ("${A:-dflt}", "alpha"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a b:c/d}", "a b:c/d"),
        ("$${A}", "${A}"),
        ("$${", "${"),
        ("cost $5", "cost $5"),
        ("$A", "$A"),
        ("$", "$"),
        ("a$$b", "a$$b"),
        ("$$${A}", "$${A}"),  # left to right: "$" then the escape "$${"
        ("${EMPTY}", ""),
    ],
)
def test_expand(raw, expected):
    assert expand(raw, ENV) == expected


def test_unset_names_variable_only():
    with pytest.raises(ExpansionError) as e:
        expand("token ${SECRET_TOKEN} here", ENV)
    assert str(e.value) == "environment variable SECRET_TOKEN is not set"
    assert e.value.variable == "SECRET_TOKEN"


@pytest.mark.parametrize(("raw", "fragment"), [("${A", "unterminated"), ("${}", "invalid variable name ''"),
                                               ("${1X}", "invalid variable name '1X'"), ("${A B}", "invalid variable name")])
def test_malformed(raw, fragment):
    with pytest.raises(ExpansionError, match=fragment):
        expand(raw, ENV)


def test_default_is_not_re_expanded():
    assert expand("${MISSING:-${A}", ENV) == "${A"
