"""Page sizes and opaque page tokens for keyset pagination."""

from __future__ import annotations

import base64
import binascii

from loanbilling.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_PREFIX = "k1:"


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.of("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode()


def decode_token(token: str) -> int | None:
    """The id the previous page ended at, or None for the first page."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        if text.startswith(_PREFIX):
            value = int(text[len(_PREFIX) :])
            if value > 0:
                return value
    except (ValueError, UnicodeError, binascii.Error):
        pass
    raise InvalidArgument.of(
        "page_token", "is not a token this service issued: pass next_page_token as received"
    )
