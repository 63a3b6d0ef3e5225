"""Clock-skew detection from heartbeat wall times (pure)."""

from __future__ import annotations

import logging

import pytest

from zkv.core.clocks import ClockSkew


def test_far_off_peers_are_warned_of_once_and_the_odd_clock_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    skew = ClockSkew("n1", max_skew=60)
    with caplog.at_level(logging.WARNING, logger="zkv.core.clocks"):
        for _ in range(3):
            skew.on_heartbeat("n2", 1_000_000 + 3_600_000, my_wall=1000.0)
            skew.on_heartbeat("n3", 1_000_500, my_wall=1000.0)
    assert [r.getMessage() for r in caplog.records] == [
        "clock: n2's wall clock is +3600.0 s from n1's (more than 60 s): check NTP on both"
    ]
    stats = skew.statistics()
    assert stats.off_peers == ("n2",) and stats.peer_offsets_s == {"n2": 3600.0, "n3": 0.5}
    assert not stats.suspect_self  # one of two peers is off: it is that peer
    skew.on_heartbeat("n3", 1_000_000 - 3_600_000, my_wall=1000.0)
    assert skew.statistics().suspect_self is False  # off both ways: no one to blame for sure
    lone = ClockSkew("n9", max_skew=60)
    for peer in ("n1", "n2", "n3"):
        lone.on_heartbeat(peer, 1_000_000, my_wall=1000.0 + 3600)
    assert lone.statistics().suspect_self  # every peer agrees and differs from n9: n9's clock is wrong
    lone.on_heartbeat("n1", 1_000_000, my_wall=1000.0)
    assert lone.statistics().off_peers == ("n2", "n3")
