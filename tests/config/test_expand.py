import pytest

from broxy_tray.config._expand import ExpansionError, Resolution, Sources, expand

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
    assert str(e.value) == "environment variable SECRET_TOKEN is not set: `broxy-tray secret set SECRET_TOKEN`"
    assert e.value.variable == "SECRET_TOKEN"


@pytest.mark.parametrize(("raw", "fragment"), [("${A", "unterminated"), ("${}", "invalid variable name ''"),
                                               ("${1X}", "invalid variable name '1X'"), ("${A B}", "invalid variable name")])
def test_malformed(raw, fragment):
    with pytest.raises(ExpansionError, match=fragment):
        expand(raw, ENV)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${MISSING:-${A}}", "alpha"),
        ("${MISSING:-pre-${A}-post}/x", "pre-alpha-post/x"),
        ("${MISSING:-${OTHER:-${A}}}", "alpha"),
        ("${A:-${UNSET_TOO}}", "alpha"),  # the default is not looked at when the variable is set
        ("${MISSING:-$${A}}", "${A}"),
        ("${MISSING:-x}}", "x}"),
    ],
)
def test_nested_default_is_expanded_never_left_literal(raw, expected):
    """Issue 17.8: `${A:-${B}}` used to come out as the literal `${B}` (the first `}` closed the placeholder)."""
    out = expand(raw, ENV)
    assert out == expected and "${B" not in out


def test_nested_default_that_cannot_be_expanded_is_reported():
    with pytest.raises(ExpansionError) as e:
        expand("${MISSING:-${ALSO_MISSING}}", ENV)
    assert e.value.variable == "ALSO_MISSING"
    with pytest.raises(ExpansionError, match="unterminated"):
        expand("${MISSING:-${A}", ENV)  # one } short: reported, not the literal "${A"


def test_lookup_order_environment_then_secret_store_then_default():
    sources = Sources({"ENV_ONLY": "from-env", "BOTH": "env-wins", "EMPTY": ""},
                      secrets={"BOTH": "store-loses", "STORED": "from-store", "EMPTY": "stored-beats-empty"})
    trace: list[Resolution] = []
    out = expand("${ENV_ONLY} ${BOTH} ${STORED} ${EMPTY} ${NONE:-dflt} ${STORED:-dflt}", sources, trace)
    assert out == "from-env env-wins from-store stored-beats-empty dflt from-store"
    assert [(r.name, r.origin) for r in trace] == [
        ("ENV_ONLY", "environment"), ("BOTH", "environment"), ("STORED", "secret store"),
        ("EMPTY", "secret store"), ("NONE", "default"), ("STORED", "secret store")]
    values = ("from-env", "env-wins", "from-store", "stored-beats-empty")
    assert not any(v in repr(r) for r in trace for v in values), "a Resolution never shows its value"


def test_missing_with_an_unavailable_store_says_why_and_how_to_fix():
    sources = Sources({}, secrets_unavailable="the keyring is locked")
    with pytest.raises(ExpansionError) as e:
        expand("${GITHUB_TOKEN}", sources)
    assert str(e.value) == ("GITHUB_TOKEN is not set (the secret store is unavailable: the keyring is locked): "
                            "`broxy-tray secret set GITHUB_TOKEN`")
