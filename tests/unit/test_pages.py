"""camd.web.pages: the public landing page and the private live view."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.users import Users


def test_the_landing_page_is_public_and_links_to_the_live_view(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<h1>camd</h1>" in page
    assert 'href="/live"' in page
    assert 'href="/stills/"' in page


def test_the_landing_page_shows_the_configured_title_and_text_escaped(
    make_settings: Callable[..., Settings], hub: Hub, fanout: Fanout, users: Users
) -> None:
    from camd.web import create_app

    settings = make_settings(title="Puppy <cam>", description="Watching Rex & friends")
    page = create_app(settings, hub, fanout, users, None).test_client().get("/").get_data(as_text=True)
    assert "<title>Puppy &lt;cam&gt;</title>" in page
    assert "Watching Rex &amp; friends" in page
    assert "<cam>" not in page


def test_no_stills_link_without_a_stills_writer(settings: Settings, hub: Hub, fanout: Fanout, users: Users) -> None:
    from camd.web import create_app

    page = create_app(settings, hub, fanout, users, None).test_client().get("/").get_data(as_text=True)
    assert 'href="/live"' in page
    assert "/stills/" not in page


def test_the_live_view_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/live")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
    assert "/stream.mjpg" not in response.get_data(as_text=True)


def test_the_live_view_plays_the_stream(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get("/live", headers=auth)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'data-stream="/stream.mjpg"' in page
    assert 'src="/static/live.js"' in page
    assert "<title>Live · camd</title>" in page


def test_the_static_files_the_pages_use_are_served_publicly(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for name in ("style.css", "favicon.svg", "live.js"):
        assert name == "live.js" or f"/static/{name}" in page
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200, name
            assert response.content_length, name
