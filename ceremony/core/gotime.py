"""Go `time.Time` as Notary writes it in `expires` (RFC 3339 with nanoseconds).

Go reads any RFC 3339 value and writes it back in its own form: fraction with
trailing zeros trimmed (no dot when zero), `Z` for a zero offset, otherwise
`±hh:mm`. The server hashes its own re-serialisation, so what we write must be
in exactly that form (notary-formats.md §2.2, §7.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})",
    re.ASCII,  # ASCII digits only, as Go; used with fullmatch (no trailing newline)
)


@dataclass(frozen=True, slots=True, order=False)
class GoTime:
    """An instant with nanosecond precision and the zone it was written in."""

    wall: datetime  # timezone-aware, microsecond == 0
    nanos: int = 0

    def __post_init__(self) -> None:
        if self.wall.tzinfo is None or self.wall.microsecond != 0:
            raise ValueError("GoTime needs an aware datetime with whole seconds")
        if not 0 <= self.nanos < 1_000_000_000:
            raise ValueError("nanoseconds out of range")

    @classmethod
    def parse(cls, text: str) -> GoTime:
        """Parse an RFC 3339 timestamp; raises ValueError on anything else."""
        m = _RFC3339.fullmatch(text)
        if not m:
            raise ValueError(f"{text!r} is not an RFC 3339 time")
        year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
        frac = m.group(7) or ""
        zone = m.group(8)
        if zone == "Z":
            tz: timezone = UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            hh, mm = int(zone[1:3]), int(zone[4:6])
            if hh > 23 or mm > 59:
                raise ValueError(f"{text!r} has an invalid zone offset")
            tz = timezone(sign * timedelta(hours=hh, minutes=mm))
        wall = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        return cls(wall, int(frac.ljust(9, "0")) if frac else 0)

    @classmethod
    def from_datetime(cls, when: datetime) -> GoTime:
        """Wrap an aware datetime (microseconds become nanoseconds)."""
        if when.tzinfo is None:
            raise ValueError("expiry times must carry a time zone")
        return cls(when.replace(microsecond=0), when.microsecond * 1000)

    def format(self) -> str:
        """Go's RFC3339Nano rendering."""
        w = self.wall  # not strftime: %Y does not zero-pad years below 1000
        base = f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}"
        frac = f"{self.nanos:09d}".rstrip("0")
        if frac:
            base += "." + frac
        offset = self.wall.utcoffset() or timedelta(0)
        if offset == timedelta(0):
            return base + "Z"
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        total = abs(total)
        return f"{base}{sign}{total // 3600:02d}:{(total % 3600) // 60:02d}"

    @property
    def representable(self) -> bool:
        """Whether the instant has a UTC datetime (years 1-9999 after the zone is removed)."""
        try:
            self.to_datetime()
        except OverflowError:
            return False
        return True

    def to_datetime(self) -> datetime:
        """The instant in UTC, truncated to microseconds."""
        return (self.wall + timedelta(microseconds=self.nanos // 1000)).astimezone(UTC)

    def _key(self) -> tuple[int, int]:
        return (int(self.wall.timestamp()), self.nanos)

    def before(self, when: datetime) -> bool:
        """True if this instant is strictly before `when` (an aware datetime)."""
        # Compare in the written zone: converting years 1 or 9999 to UTC can overflow.
        return self.wall + timedelta(microseconds=self.nanos // 1000) < when

    def __str__(self) -> str:
        return self.format()


def utc_now() -> datetime:
    """The local clock in UTC; only the CLI edge calls this (air-gapped clocks are not trusted)."""
    return datetime.now(UTC)
