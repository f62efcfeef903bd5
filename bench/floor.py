"""The rate-limit floor: the earliest moment the tap's own limiter lets the last of R requests start.

Pure arithmetic, replaying the rules of `tap_aha.ratelimit.RateLimiter` with instant answers and
unlimited concurrency: request i may start at

    t_i = max(t_(i-1), t_(i-M) + 60 s + margin, t_(i-S) + 1 s + margin),  t_1 = 0,

with M the per-minute and S the per-second limit. The floor is t_R plus one latency (the last
answer has to come back).
"""

from __future__ import annotations

from tap_aha.ratelimit import WINDOW_MARGIN

_M = f"{WINDOW_MARGIN:g} s"
FORMULA = (
    f"floor = t_R + latency; t_1 = 0, t_i = max(t_(i-1), t_(i-M) + 60 s + {_M}, t_(i-S) + 1 s + {_M}) "
    f"(M, S: per-minute and per-second limits; {_M}: the limiter's margin)"
)


def last_start(requests: int, per_minute: int, per_second: int, margin: float = WINDOW_MARGIN) -> float:
    """Seconds from the first request's start to the last one's, under both sliding windows."""
    starts: list[float] = []
    now = 0.0
    windows = ((per_minute, 60.0 + margin), (per_second, 1.0 + margin))
    for i in range(requests):
        for limit, span in windows:
            if i >= limit:
                now = max(now, starts[i - limit] + span)
        starts.append(now)
    return starts[-1] if starts else 0.0


def floor_seconds(
    requests: int, per_minute: int, per_second: int, latency: float, margin: float = WINDOW_MARGIN
) -> float:
    """The rate-limit floor for `requests` requests: the last start plus one latency."""
    if requests <= 0:
        return 0.0
    return last_start(requests, per_minute, per_second, margin) + latency
