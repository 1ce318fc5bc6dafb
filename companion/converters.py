"""URL converters: ids in paths stay within SQLite's 64-bit integers."""

from werkzeug.routing import IntegerConverter

MAX_ID = 10**18 - 1  # 18 digits: always inside SQLite's signed 64-bit integers


class IdConverter(IntegerConverter):
    """An <int:...> of at most 18 digits; longer ids match no route (a plain 404)."""

    # Limiting the pattern, not the value, keeps an oversized id a 404 rather than a 405.
    # ASCII digits only, as parse_id(): Python's \d and int() also read other scripts' digits.
    regex = r"[0-9]{1,18}"


def parse_id(text: str | None) -> int | None:
    """Read a positive id from a query string; anything else (or too big) is None."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    value = int(text)
    return value if value > 0 else None
