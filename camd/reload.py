"""SIGHUP: re-read the users file and the settings that can change without a restart.

The configuration is loaded again exactly as at start (same flags, same
``CAMD_*`` environment, the TOML file read afresh). What can change in a
running daemon is applied: the log level, and the stills settings when the
stills writer takes them (``update_settings``). Everything else that changed
is named in the log as needing a restart. A config that no longer loads is
reported and the running settings stay as they are.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Protocol

from camd.settings import FIELDS, Settings, SettingsError, format_duration, is_duration
from camd.stills import STILLS_FIELDS

log = logging.getLogger(__name__)


class ReloadableUsers(Protocol):
    def reload(self, force: bool = False) -> bool: ...


class StillsSettings(Protocol):
    def update_settings(self, settings: Settings) -> None: ...


class Notify(Protocol):
    def reloading(self) -> None: ...

    def reloaded(self) -> None: ...


def apply_log_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())


class Reloader:
    """Keeps the settings in effect and applies a re-read configuration to the running parts."""

    def __init__(
        self,
        settings: Settings,
        load: Callable[[], Settings] | None,
        users: ReloadableUsers,
        *,
        stills: StillsSettings | None = None,
        service: Notify | None = None,
    ) -> None:
        self.settings = settings
        self.load = load
        self.users = users
        self.stills = stills
        self.service = service

    def reload(self) -> None:
        """What SIGHUP does; never raises (a bad config must not stop a running camera)."""
        if self.service is not None:
            self.service.reloading()
        try:
            self._reload()
        except Exception:
            log.exception("SIGHUP: reload failed; keeping the settings in effect")
        finally:
            if self.service is not None:
                self.service.reloaded()

    def _reload(self) -> None:
        self.users.reload(force=True)
        if self.load is None:
            log.info("SIGHUP: users re-read; no configuration to re-read")
            return
        try:
            new = self.load()
        except SettingsError as exc:
            log.error("SIGHUP: %s; keeping the settings in effect", exc)
            return
        old_view, new_view = self.settings.public_view(), new.public_view()
        changed = [name for name in FIELDS if getattr(new, name) != getattr(self.settings, name)]
        if not changed:
            log.info("SIGHUP: users re-read; settings unchanged")
            return
        applied: list[str] = ["log_level"] if "log_level" in changed else []
        # A new stills folder needs a restart (the index and the web routes hold it); the rest applies now.
        stills_changed = [name for name in changed if name in STILLS_FIELDS and name != "stills_dir"]
        if stills_changed and self.stills is not None:
            kept = dataclasses.replace(new, stills_dir=self.settings.stills_dir, state_dir=self.settings.state_dir)
            try:
                self.stills.update_settings(kept)
            except Exception as exc:
                log.error("SIGHUP: the stills writer refused the new settings: %s", exc)
            else:
                applied.extend(stills_changed)
        restart = [name for name in changed if name not in applied]
        # Say what happened at the more verbose of the two log levels, then settle on the new one.
        apply_log_level(min(self.settings.log_level, new.log_level, key=_verbosity))
        if applied:
            log.info("SIGHUP: applied %s", _describe(applied, old_view, new_view))
        if restart:
            log.warning(
                "SIGHUP: these changes need a restart to take effect (systemctl restart camd): %s",
                _describe(restart, old_view, new_view),
            )
        self.settings = dataclasses.replace(self.settings, **{name: getattr(new, name) for name in applied})
        apply_log_level(self.settings.log_level)


def _verbosity(level: str) -> int:
    return logging.getLevelNamesMapping()[level.upper()]


def _describe(names: list[str], old: dict[str, Any], new: dict[str, Any]) -> str:
    def shown(name: str, value: Any) -> str:
        return format_duration(value) if is_duration(name) else repr(value)  # 10m, as it was written

    return ", ".join(f"{name} {shown(name, old[name])} -> {shown(name, new[name])}" for name in names)
