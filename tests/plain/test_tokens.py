import time
import warnings

import jwt
import pytest

from pos_core import tokens

SECRET = "x" * 40
AUD = "3f0c2d8e-database-uuid"


def _pair(**overrides):
    values = dict(device_id=7, config_id=3, company_id=1, role="waiter", version=2, audience=AUD)
    values.update(overrides)
    return tokens.issue_pair(SECRET, **values)


def test_pair_roundtrip_carries_device_claims():
    pair = _pair()
    claims = tokens.decode(SECRET, pair.access_token, tokens.ACCESS, AUD)
    assert (claims.device_id, claims.config_id, claims.company_id) == (7, 3, 1)
    assert (claims.role, claims.version, claims.token_type) == ("waiter", 2, "access")
    refresh = tokens.decode(SECRET, pair.refresh_token, tokens.REFRESH, AUD)
    assert refresh.jti == pair.refresh_jti
    assert pair.refresh_expires_at > pair.access_expires_at > time.time()


def test_access_and_refresh_are_not_interchangeable():
    pair = _pair()
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, pair.refresh_token, tokens.ACCESS, AUD)
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, pair.access_token, tokens.REFRESH, AUD)


def test_expiry_and_signature():
    pair = _pair(access_ttl=60)
    with pytest.raises(tokens.TokenExpired) as info:
        tokens.decode(SECRET, pair.access_token, tokens.ACCESS, AUD, now=pair.access_expires_at)
    assert info.value.code == "token_expired"
    tokens.decode(SECRET, pair.access_token, tokens.ACCESS, AUD, now=pair.access_expires_at - 1)
    with pytest.raises(tokens.TokenError) as info:
        tokens.decode("y" * 40, pair.access_token, tokens.ACCESS, AUD)
    assert info.value.code == "invalid_token"


def test_forged_algorithm_none_and_foreign_issuer_are_rejected():
    payload = jwt.decode(_pair().access_token, options={"verify_signature": False})
    unsigned = jwt.encode(payload, None, algorithm="none")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, unsigned, tokens.ACCESS, AUD)
    foreign = jwt.encode({**payload, "iss": "someone-else"}, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, foreign, tokens.ACCESS, AUD)
    bad_role = jwt.encode({**payload, "role": "owner"}, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, bad_role, tokens.ACCESS, AUD)


def test_each_pair_is_unique_and_secret_must_be_long():
    first, second = _pair(), _pair()
    assert first.refresh_jti != second.refresh_jti
    assert first.access_token != second.access_token
    with pytest.raises(tokens.InsecureSecret):
        tokens.issue_pair(
            "short", device_id=1, config_id=1, company_id=1, role="waiter", version=0, audience=AUD
        )
    with pytest.raises(ValueError):
        _pair(role="owner")


def test_the_minimum_secret_length_holds_when_decoding_too():
    payload = jwt.decode(_pair().access_token, options={"verify_signature": False})
    with warnings.catch_warnings():  # PyJWT warns about the short key, as it should
        warnings.simplefilter("ignore")
        token = jwt.encode(payload, "s" * 31, algorithm="HS256")
    with pytest.raises(tokens.InsecureSecret):
        tokens.decode("s" * 31, token, tokens.ACCESS, AUD)
    with pytest.raises(tokens.InsecureSecret):
        tokens.decode("", _pair().access_token, tokens.ACCESS, AUD)


def test_a_token_of_another_database_is_refused():
    other = _pair(audience="another-database-uuid")
    for token, kind in ((other.access_token, tokens.ACCESS), (other.refresh_token, tokens.REFRESH)):
        assert tokens.decode(SECRET, token, kind, "another-database-uuid").device_id == 7
        with pytest.raises(tokens.TokenError) as info:
            tokens.decode(SECRET, token, kind, AUD)
        assert info.value.code == "wrong_audience"
    payload = jwt.decode(_pair().access_token, options={"verify_signature": False})
    del payload["aud"]
    without_audience = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError) as info:
        tokens.decode(SECRET, without_audience, tokens.ACCESS, AUD)
    assert info.value.code == "invalid_token"
    with pytest.raises(ValueError):
        _pair(audience="")


def test_same_claims_time_and_jtis_sign_the_same_pair_again():
    first = _pair(now=1_700_000_000)
    again = _pair(now=1_700_000_000, jtis=(first.access_jti, first.refresh_jti))
    assert again == first
    assert _pair(now=1_700_000_000) != first


@pytest.mark.parametrize(
    ("jti", "age", "expected"),
    [
        ("current", 0, tokens.ROTATE),
        ("current", 10_000, tokens.ROTATE),
        ("previous", 0, tokens.REPLAY),
        ("previous", 30, tokens.REPLAY),
        ("previous", 31, tokens.REUSED),
        ("previous", -5, tokens.REUSED),
        ("older", 1, tokens.REUSED),
    ],
)
def test_refresh_outcome_within_and_after_the_grace_window(jti, age, expected):
    now = 1_700_000_100
    outcome = tokens.refresh_outcome(
        jti,
        current_jti="current",
        previous_jti="previous",
        rotated_at=now - age,
        now=now,
        grace=30,
    )
    assert outcome == expected


def test_refresh_outcome_without_a_rotation_to_replay():
    kwargs = dict(current_jti=None, previous_jti=None, rotated_at=None, now=10, grace=30)
    assert tokens.refresh_outcome("anything", **kwargs) == tokens.REUSED
    assert tokens.refresh_outcome("", **{**kwargs, "previous_jti": ""}) == tokens.REUSED
