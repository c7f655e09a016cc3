"""Product search: how a query is matched, scored and paged.

The database does the matching with PostgreSQL's ``pg_trgm`` (trigram GIN
indexes on the product name, internal reference and barcode); the rules it
applies are stated here, once:

- a product matches when the query's word similarity with its name (any
  translation) reaches :data:`WORD_THRESHOLD`: a typo ("burgr") or a prefix
  ("chee") still finds the word ("Burger", "Cheese"), a query sharing a
  letter or two does not;
- or when its internal reference or barcode, which are identifiers, not
  words, starts with the query, case aside (a partial reference or scan;
  ``%`` and ``_`` are plain characters there). A similarity threshold on
  identifiers matches thousands of a catalog's references at once ("BS-005610"
  has 0.67 with "BS-005611" and 0.5 with "BS-000561"), so it is not used;
- its score is the best score of the fields it matched on: for the name,
  the word similarity weighted for :data:`LENGTH_WEIGHT` by the share of the
  name the query covers (length ratio), so that the same word ranks a short
  name ("Burger", 1) above a longer one ("Cheese Burger", 0.87); for a
  reference or barcode, the similarity (1 when equal to the query). Scores
  are rounded to :data:`SCORE_DIGITS` decimals
  and ties go to the lower id, so that the order is total and a page's
  cursor compares exactly;
- pages are keyset pages on (score descending, id ascending): the cursor
  carries the last (score, id) of a page and a digest of its query, so a
  cursor is refused with another query instead of paging something else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

from .exceptions import InvalidInput
from .limits import MAX_INT

# pg_trgm's word_similarity_threshold while searching (its default, 0.6,
# misses one-letter typos in five-letter words: "burgr" has 0.67 with
# "Burger" but "chese" only 0.625 with "Cheese" and "margarita" 0.5).
WORD_THRESHOLD = 0.5
LENGTH_WEIGHT = 0.25
SCORE_DIGITS = 4
_SCORE_QUANTUM = Decimal(1).scaleb(-SCORE_DIGITS)


def normalize_query(text: str) -> str:
    """The query as it is matched: runs of whitespace as one space."""
    return " ".join(text.split())


def like_prefix(query: str) -> str:
    """An (I)LIKE pattern of the texts starting with ``query``, its own
    wildcards escaped."""
    return re.sub(r"([\\%_])", r"\\\1", query) + "%"


def query_digest(query: str) -> str:
    return hashlib.sha256(query.casefold().encode()).hexdigest()[:16]


def encode_cursor(query: str, score: Decimal, last_id: int) -> str:
    """The cursor after a page whose last hit is (``score``, ``last_id``)."""
    payload = {"q": query_digest(query), "score": str(score), "after": last_id}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_cursor(query: str, cursor: str) -> tuple[Decimal, int]:
    """(score, id) of the last hit of the previous page of ``query``."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        digest, raw_score, after = payload["q"], payload["score"], payload["after"]
        score = Decimal(raw_score) if type(raw_score) is str else None
    except (ValueError, TypeError, KeyError, RecursionError, InvalidOperation):
        score = None
    valid = (
        score is not None
        and score.is_finite()
        and 0 <= score <= 1
        and score == score.quantize(_SCORE_QUANTUM)
        and type(after) is int
        and 0 < after <= MAX_INT
    )
    if not valid:
        raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
    if digest != query_digest(query):
        raise InvalidInput(
            "The cursor belongs to another query: start again without it.",
            code="invalid_cursor",
        )
    return score, after
