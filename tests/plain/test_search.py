from decimal import Decimal

import pytest

from pos_core import search
from pos_core.exceptions import InvalidInput


def test_cursor_round_trip_and_binding_to_its_query():
    cursor = search.encode_cursor("Burger", Decimal("0.8125"), 42)
    assert search.decode_cursor("burger", cursor) == (Decimal("0.8125"), 42)  # case aside
    with pytest.raises(InvalidInput) as refused:
        search.decode_cursor("pizza", cursor)
    assert refused.value.code == "invalid_cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "e30=",  # {}
        search.encode_cursor("q", Decimal("1.5"), 1),
        search.encode_cursor("q", Decimal("0.12345"), 1),
        search.encode_cursor("q", Decimal("0.5"), 0),
        search.encode_cursor("q", Decimal("0.5"), 2**31),
    ],
)
def test_forged_cursors_are_refused(cursor):
    with pytest.raises(InvalidInput):
        search.decode_cursor("q", cursor)


def test_like_prefix_escapes_wildcards():
    assert search.like_prefix("a%b_c\\d") == "a\\%b\\_c\\\\d%"
    assert search.normalize_query("  cheese \t burger ") == "cheese burger"
