"""camd.reload: what SIGHUP applies from a re-read config, what needs a restart, and what a bad config keeps."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from camd import settings as settings_module
from camd.http import Fanout
from camd.hub import Hub
from camd.reload import Reloader
from camd.service import Notifier, Service
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.users import Users, read_users, write_users

CHEAP_HASH = "scrypt:1024:8:1"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "camd.toml"
    path.write_text('stills_interval = "5m"\nport = 8080\n')
    return path


@pytest.fixture
def load(tmp_path: Path, config: Path) -> Callable[[], Settings]:
    """Loads the config as camd does at start and again on SIGHUP: same flags, same environment."""
    return functools.partial(settings_module.load, {"state_dir": str(tmp_path), "source": "test"}, {}, config)


@pytest.fixture
def users(tmp_path: Path) -> Users:
    write_users(tmp_path / "users", {"admin": generate_password_hash("first", method=CHEAP_HASH)})
    return Users(tmp_path / "users")


@pytest.fixture(autouse=True)
def root_level() -> Iterator[None]:
    """The reloader sets the root logger's level: give the next test the level this one found."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture
def writer(load: Callable[[], Settings]) -> StillsWriter:
    settings = load()
    return StillsWriter(settings, Hub(settings.jpeg_quality))


@pytest.fixture
def reloader(load: Callable[[], Settings], users: Users, writer: StillsWriter) -> Reloader:
    return Reloader(load(), load, users, stills=writer)


def test_stills_settings_apply_at_once(reloader: Reloader, writer: StillsWriter, config: Path) -> None:
    config.write_text('stills_interval = "1m"\nstills_quality = 50\nstills_max_count = 10\nport = 8080\n')
    reloader.reload()
    assert writer.settings.stills_interval == 60
    assert writer.settings.stills_quality == 50
    assert writer.limits.max_count == 10
    assert (reloader.settings.stills_interval, reloader.settings.stills_max_count) == (60, 10)


def test_changes_that_need_a_restart_are_named_and_not_taken(
    reloader: Reloader, writer: StillsWriter, config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(f'stills_interval = "5m"\nport = 9090\nstills_dir = "{tmp_path / "elsewhere"}"\n')
    with caplog.at_level(logging.INFO, logger="camd.reload"):
        reloader.reload()
    assert reloader.settings.port == 8080
    assert reloader.settings.stills_path == tmp_path / "stills"
    assert writer.root == tmp_path / "stills"
    warning = next(record.message for record in caplog.records if record.levelno == logging.WARNING)
    assert "need a restart" in warning
    assert "port 8080 -> 9090" in warning and "stills_dir" in warning


def test_a_config_that_no_longer_loads_keeps_the_settings_in_effect(
    reloader: Reloader, writer: StillsWriter, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = reloader.settings
    for text in ('stills_intervall = "1m"\n', "stills_interval = -1\n", "not toml = = =\n"):
        config.write_text(text)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="camd.reload"):
            reloader.reload()  # never raises
        assert reloader.settings is before
        assert writer.settings.stills_interval == 300
        assert "keeping the settings in effect" in caplog.text, text


def test_a_missing_config_file_keeps_the_settings_in_effect(
    reloader: Reloader, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = reloader.settings
    config.unlink()
    with caplog.at_level(logging.ERROR, logger="camd.reload"):
        reloader.reload()
    assert reloader.settings is before
    assert "does not exist" in caplog.text


def test_the_users_file_is_read_again(reloader: Reloader, users: Users, caplog: pytest.LogCaptureFixture) -> None:
    current = read_users(users.path)
    write_users(users.path, {**current, "bob": generate_password_hash("second", method=CHEAP_HASH)})
    with caplog.at_level(logging.INFO, logger="camd.users"):
        reloader.reload()
    assert "loaded 2 user(s)" in caplog.text  # read by the reload, before any login asked
    assert users.verify("bob", "second")


def test_without_a_config_to_load_only_the_users_are_read(
    users: Users, writer: StillsWriter, load: Callable[[], Settings], caplog: pytest.LogCaptureFixture
) -> None:
    reloader = Reloader(load(), None, users, stills=writer)
    with caplog.at_level(logging.INFO):
        reloader.reload()
    assert "loaded 1 user(s)" in caplog.text
    assert "no configuration to re-read" in caplog.text


def test_an_unchanged_config_changes_nothing(reloader: Reloader, caplog: pytest.LogCaptureFixture) -> None:
    before = reloader.settings
    with caplog.at_level(logging.INFO, logger="camd.reload"):
        reloader.reload()
    assert reloader.settings is before
    assert "settings unchanged" in caplog.text


def test_the_log_level_applies_at_once(reloader: Reloader, config: Path) -> None:
    logging.getLogger().setLevel(logging.INFO)
    config.write_text('stills_interval = "5m"\nport = 8080\nlog_level = "debug"\n')
    reloader.reload()
    assert logging.getLogger().level == logging.DEBUG
    assert reloader.settings.log_level == "debug"
    config.write_text('stills_interval = "5m"\nport = 8080\nlog_level = "warning"\n')
    reloader.reload()
    assert logging.getLogger().level == logging.WARNING


class RefusingWriter:
    """A stills writer that turns every new setting down."""

    def update_settings(self, settings: Settings) -> None:
        raise ValueError("not now")


def test_stills_settings_the_writer_refuses_need_a_restart(
    load: Callable[[], Settings], users: Users, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = Reloader(load(), load, users, stills=RefusingWriter())
    config.write_text('stills_interval = "1m"\nport = 8080\n')
    with caplog.at_level(logging.INFO, logger="camd.reload"):
        reloader.reload()
    assert reloader.settings.stills_interval == 300
    assert "refused the new settings: not now" in caplog.text
    assert "stills_interval 5m -> 1m" in caplog.text


class Progressing:
    """Capture as the watchdog sees it: making progress."""

    def stuck(self) -> str | None:
        return None


def test_systemd_hears_reloading_then_ready(
    load: Callable[[], Settings], users: Users, writer: StillsWriter, tmp_path: Path, config: Path
) -> None:
    hub = writer.hub
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(tmp_path / "notify"))
        systemd.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        service = Service(hub, Progressing(), Fanout(hub, 4), 5.0, notifier)
        reloader = Reloader(load(), load, users, stills=writer, service=service)
        config.write_text("this is not toml\n")  # a failed reload still ends with READY=1
        reloader.reload()
        assert systemd.recv(4096).startswith(b"RELOADING=1\n")
        assert systemd.recv(4096).startswith(b"READY=1\n")
        notifier.close()
