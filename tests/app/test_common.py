"""Pieces shared by the entity pages."""

from __future__ import annotations

from app import figures
from app.pages.common import distinct_positions


def test_a_map_draws_each_distinct_position_once():
    lats = [31.23, 31.23000001, None, float("nan"), 39.9, 31.23, 22.5]
    lons = [121.47, 121.47000002, 116.4, 116.4, 116.4, 121.47, 114.1]
    assert distinct_positions(lats, lons) == [[31.23, 121.47, None], [39.9, 116.4, None], [22.5, 114.1, None]]
    assert distinct_positions(lats, lons, cap=2) == [[31.23, 121.47, None], [39.9, 116.4, None]]


def test_maps_of_close_positions_are_not_zoomed_past_the_outlines():
    """A terminal's positions 100 m apart are fitted with two invisible corner points MIN_SPAN_DEG apart
    (fitting them alone zoomed the 1:110m outlines thousands of times: seconds of drawing); far-apart positions
    are fitted as they are."""
    close = figures.map_figure(None, [[29.4661, 106.6302, None], [29.4684, 106.6327, None]], "t")
    assert close.layout.geo.fitbounds == "locations"
    extent = [t for t in close.data if t.name == "extent"]
    assert len(extent) == 1 and extent[0].marker.opacity == 0
    lat, lon = extent[0].lat, extent[0].lon
    assert lat[1] - lat[0] >= figures.MIN_SPAN_DEG and lon[1] - lon[0] >= figures.MIN_SPAN_DEG
    assert lat[0] < 29.4661 < 29.4684 < lat[1] and lon[0] < 106.6302 < 106.6327 < lon[1]
    far = figures.map_figure((31.2, 121.5), [[22.5, 114.1, None]], "t", later=[[39.9, 116.4]])
    assert far.layout.geo.fitbounds == "locations" and not [t for t in far.data if t.name == "extent"]
    assert figures.map_figure(None, [], "t").layout.geo.fitbounds is False
