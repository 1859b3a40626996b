"""Locations the app sends are relative and cannot point a browser at another site."""

from __future__ import annotations

import pytest

from camd.web.headers import relative


@pytest.mark.parametrize(
    ("location", "sent"),
    [
        ("http://evil.example/stills/", "/stills/"),
        ("https://evil.example:8443/stills/?day=2024-01-02", "/stills/?day=2024-01-02"),
        ("//evil.example/stills/", "/stills/"),
        ("/\\evil.example/stills/", "/evil.example/stills/"),
        ("http://evil.example", "/"),
        ("/stills/", "/stills/"),
        ("/stills/?page=2#top", "/stills/?page=2#top"),
        ("?page=2", "?page=2"),
    ],
)
def test_relative(location: str, sent: str) -> None:
    assert relative(location) == sent
