"""Pieces shared by the entity pages."""

from __future__ import annotations

from app.pages.common import distinct_positions


def test_a_map_draws_each_distinct_position_once():
    lats = [31.23, 31.23000001, None, float("nan"), 39.9, 31.23, 22.5]
    lons = [121.47, 121.47000002, 116.4, 116.4, 116.4, 121.47, 114.1]
    assert distinct_positions(lats, lons) == [[31.23, 121.47, None], [39.9, 116.4, None], [22.5, 114.1, None]]
    assert distinct_positions(lats, lons, cap=2) == [[31.23, 121.47, None], [39.9, 116.4, None]]
