"""Times and UTC offsets as analysts write them in clues."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from geoapp.fusion.clues.base import ClueError

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def parse_offset(text: str, value: str) -> timedelta:
    """``+02:00``, ``-0530``, ``UTC+2`` -> timedelta; real offsets only (-12:00 .. +14:00, whole quarters)."""
    value = value.strip()
    if value.upper() in ("Z", "UTC", "GMT", "0", "+0", "00:00", "+00:00"):
        return timedelta(0)
    match = _OFFSET.match(value)
    if not match:
        raise ClueError(text, f"offset {value!r} is not like +02:00, -05:30 or UTC+2")
    sign = -1 if match.group(1) == "-" else 1
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    offset = sign * timedelta(hours=hours, minutes=minutes)
    if minutes % 15 or minutes >= 60 or not timedelta(hours=-12) <= offset <= timedelta(hours=14):
        raise ClueError(text, f"offset {value} is impossible: real UTC offsets run from -12:00 to +14:00 "
                              "in steps of 15 minutes")
    return offset


def parse_time(text: str, value: str) -> datetime:
    """ISO-8601 date-time, naive (local) or with ``Z``/an offset."""
    try:
        return datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ClueError(text, f"time {value!r} is not an ISO date-time such as 2024-06-21T10:00:00Z") from None


def utc_time(text: str, value: str, offset: str | None = None) -> datetime:
    """An absolute instant: the time's own zone, else ``offset``; a bare local time is an error."""
    moment = parse_time(text, value)
    if moment.tzinfo is None:
        if offset is None:
            raise ClueError(text, f"time {value} has no time zone: add Z (UTC), an offset (+02:00) or offset=+02:00")
        moment = moment.replace(tzinfo=timezone(parse_offset(text, offset)))
    return moment.astimezone(timezone.utc)
