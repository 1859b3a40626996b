"""The first password: never starts with '-', kept 0600 until its own user changes it."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

import pytest

from camd import users


def test_generated_passwords_never_start_with_a_dash() -> None:
    passwords = [users.new_password() for _ in range(3000)]
    assert all(password[0].isalnum() for password in passwords)
    assert len(set(passwords)) == len(passwords) and min(map(len, passwords)) >= 16


def test_kept_private_with_its_user(tmp_path: Path) -> None:
    path = users.write_initial_password(tmp_path, "admin", "s3cret-pass")
    assert path.read_text() == "s3cret-pass\n"  # the password alone: `cat` shows just it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert users.initial_password_user(tmp_path) == "admin"


def test_only_its_own_user_forgets_it(tmp_path: Path) -> None:
    users.write_initial_password(tmp_path, "admin", "s3cret-pass")
    assert not users.forget_initial_password(tmp_path, "prometheus")
    assert (tmp_path / users.INITIAL_PASSWORD_FILE).exists()
    assert users.forget_initial_password(tmp_path, "admin")
    assert not (tmp_path / users.INITIAL_PASSWORD_FILE).exists()
    assert users.initial_password_user(tmp_path) is None


def test_a_file_without_its_owner_beside_it_is_the_first_user_s(tmp_path: Path) -> None:
    (tmp_path / users.INITIAL_PASSWORD_FILE).write_text("written-by-install.sh\n")
    assert users.initial_password_user(tmp_path) == users.FIRST_USER
    assert not users.forget_initial_password(tmp_path, "bob")
    assert users.forget_initial_password(tmp_path, "admin")


def test_passwd_of_another_user_keeps_admin_s_first_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README adds a prometheus user with camd passwd: that must not lose admin's first password."""
    from camd import cli

    users.set_password(tmp_path / "users", "admin", "first-pass-1")
    users.write_initial_password(tmp_path, "admin", "first-pass-1")
    for user, kept in (("prometheus", True), ("admin", False)):
        monkeypatch.setattr(sys, "stdin", io.StringIO("a new password\n"))
        assert cli.cmd_passwd(cli.parse_args(["passwd", "--state-dir", str(tmp_path), user])) == 0
        assert (tmp_path / users.INITIAL_PASSWORD_FILE).exists() is kept, user
