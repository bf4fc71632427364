"""Charts drawn on the server as inline SVG geometry (bars with their own labels and tooltips), so the console
needs no chart library, no CDN and no inline script. Also fills the empty time buckets a series skips."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT, GAP = 600.0, 160.0, 2.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bucket, for the tooltip and the table behind the chart
    value_text: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    max_text: str
    first_label: str
    last_label: str
    width: float = WIDTH
    height: float = HEIGHT

    @property
    def summary(self) -> str:
        """What a screen reader hears for the picture: the range and the largest value."""
        return f"{self.title}, {self.first_label} to {self.last_label}, highest {self.max_text}"


def bar_chart(title: str, points: Sequence[tuple[str, float]], fmt: Callable[[float], str]) -> Chart:
    top = max((value for _, value in points), default=0.0)
    slot = WIDTH / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        height = 0.0 if top <= 0 else max(value / top * (HEIGHT - 10), 1.0 if value > 0 else 0.0)
        bars.append(Bar(x=round(index * slot + GAP / 2, 2), y=round(HEIGHT - height, 2),
                        width=round(max(slot - GAP, 1.0), 2), height=round(height, 2), label=label,
                        value_text=fmt(value)))
    first = points[0][0] if points else ""
    last = points[-1][0] if points else ""
    return Chart(title, bars, fmt(top), first, last)


def hour_buckets(now: datetime, hours: int) -> list[str]:
    """The last `hours` UTC hours, oldest first, in shared.console_stats' `YYYY-MM-DDTHH` form."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    return [(start + timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(hours)]


def day_buckets(now: datetime, days: int) -> list[str]:
    start = now.date() - timedelta(days=days - 1)
    return [(start + timedelta(days=i)).isoformat() for i in range(days)]
