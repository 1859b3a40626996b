"""The closing start-up block: URLs for here and the network, the user, where the password is, commands that work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from camd import startup, users
from camd.settings import load


def test_command_is_the_checkout_s_venv_script_when_camd_is_not_on_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "camd").write_text("")
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert startup.camd_command() == ".venv/bin/camd"
    monkeypatch.chdir("/")
    assert startup.camd_command() == str(venv / "bin" / "camd")


def test_command_is_camd_when_that_is_what_the_path_finds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "camd").write_text("#!/bin/sh\n")
    (bin_dir / "camd").chmod(0o755)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setenv("PATH", str(bin_dir))
    assert startup.camd_command() == "camd"


def test_passwd_hint_names_the_state_dir_and_the_systemd_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "camd_command", lambda: "camd")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert startup.passwd_command(load({}, environ={}), "admin") == "camd passwd admin"
    custom = load({"state_dir": "/srv/cam"}, environ={})
    assert startup.passwd_command(custom, "admin") == "camd passwd admin --state-dir /srv/cam"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/camd")
    hint = startup.passwd_command(load({}, environ={}), "admin")
    assert hint.startswith("sudo -u ") and hint.endswith("env STATE_DIRECTORY=/var/lib/camd camd passwd admin")


def test_urls_for_every_address_and_only_here_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "lan_addresses", lambda: ["192.168.1.20"])
    monkeypatch.setattr(startup, "mdns_name", lambda: "pi.local")
    everywhere = startup.urls("0.0.0.0", 8080, tls=False)
    assert everywhere.here == "http://localhost:8080/"
    assert everywhere.network == ["http://192.168.1.20:8080/", "http://pi.local:8080/"]
    local = startup.urls("127.0.0.1", 8443, tls=True)
    assert local.here == "https://127.0.0.1:8443/" and local.network == [] and "--host 0.0.0.0" in local.note
    assert startup.urls("::", 80, tls=False).here == "http://localhost:80/"


def test_lan_addresses_are_real_and_not_loopback() -> None:
    for address in startup.lan_addresses():
        assert not address.startswith("127.")


def test_block_shows_the_password_only_when_given_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(startup, "lan_addresses", lambda: ["10.0.0.5"])
    monkeypatch.setattr(startup, "mdns_name", lambda: None)
    monkeypatch.setattr(startup, "camd_command", lambda: ".venv/bin/camd")
    settings = load({"state_dir": str(tmp_path)}, environ={})
    users.set_password(settings.users_path, "admin", "Xy12345678")
    users.write_initial_password(tmp_path, "admin", "Xy12345678")

    logged = startup.block(settings, 8080, False, None)
    assert "http://localhost:8080/" in logged and "http://10.0.0.5:8080/" in logged
    assert "Xy12345678" not in logged and str(tmp_path / "initial-password") in logged
    assert f".venv/bin/camd passwd admin --state-dir {tmp_path}" in logged
    assert "Log in as:                 admin" in logged

    shown = startup.block(settings, 8080, False, "Xy12345678")
    assert "Password:                  Xy12345678" in shown

    users.forget_initial_password(tmp_path, "admin")
    later = startup.block(settings, 8080, False, None)
    assert "admin, with the password you set" in later and "initial-password" not in later


@pytest.mark.parametrize("damage", [b"\xff\xfe\x00garbage\n", b"admin\nbob:nohash\n"], ids=["not UTF-8", "malformed"])
def test_block_survives_a_users_file_being_edited_during_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, damage: bytes
) -> None:
    """The block is printed after the warm-up; a users file half-edited by then must not stop the daemon."""
    monkeypatch.setattr(startup, "lan_addresses", lambda: [])
    settings = load({"state_dir": str(tmp_path)}, environ={})
    settings.users_path.write_bytes(damage)
    shown = startup.block(settings, 8080, False, None)
    assert "Log in as:" in shown and "with the password you set" in shown
