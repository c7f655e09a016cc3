import time

import jwt
import pytest

from pos_core import tokens

SECRET = "x" * 40


def _pair(**overrides):
    values = dict(device_id=7, config_id=3, company_id=1, role="waiter", version=2)
    values.update(overrides)
    return tokens.issue_pair(SECRET, **values)


def test_pair_roundtrip_carries_device_claims():
    pair = _pair()
    claims = tokens.decode(SECRET, pair.access_token, tokens.ACCESS)
    assert (claims.device_id, claims.config_id, claims.company_id) == (7, 3, 1)
    assert (claims.role, claims.version, claims.token_type) == ("waiter", 2, "access")
    refresh = tokens.decode(SECRET, pair.refresh_token, tokens.REFRESH)
    assert refresh.jti == pair.refresh_jti
    assert pair.refresh_expires_at > pair.access_expires_at > time.time()


def test_access_and_refresh_are_not_interchangeable():
    pair = _pair()
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, pair.refresh_token, tokens.ACCESS)
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, pair.access_token, tokens.REFRESH)


def test_expiry_and_signature():
    pair = _pair(access_ttl=60)
    with pytest.raises(tokens.TokenExpired) as info:
        tokens.decode(SECRET, pair.access_token, tokens.ACCESS, now=pair.access_expires_at)
    assert info.value.code == "token_expired"
    tokens.decode(SECRET, pair.access_token, tokens.ACCESS, now=pair.access_expires_at - 1)
    with pytest.raises(tokens.TokenError) as info:
        tokens.decode("y" * 40, pair.access_token, tokens.ACCESS)
    assert info.value.code == "invalid_token"


def test_forged_algorithm_none_and_foreign_issuer_are_rejected():
    payload = jwt.decode(_pair().access_token, options={"verify_signature": False})
    unsigned = jwt.encode(payload, None, algorithm="none")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, unsigned, tokens.ACCESS)
    foreign = jwt.encode({**payload, "iss": "someone-else"}, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, foreign, tokens.ACCESS)
    bad_role = jwt.encode({**payload, "role": "owner"}, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, bad_role, tokens.ACCESS)


def test_each_pair_is_unique_and_secret_must_be_long():
    first, second = _pair(), _pair()
    assert first.refresh_jti != second.refresh_jti
    assert first.access_token != second.access_token
    with pytest.raises(ValueError):
        tokens.issue_pair("short", device_id=1, config_id=1, company_id=1, role="waiter", version=0)
    with pytest.raises(ValueError):
        _pair(role="owner")
