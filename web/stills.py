"""The stills: gallery, the files themselves (cached, ranged, downloadable), thumbnails, day zips, JSON API.

Only names that fit the layout are served; the file is then opened without
following symlinks and must be a regular file inside the stills folder.
Anything else is a 404, never an error.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request, url_for
from werkzeug.wsgi import wrap_file

from camd.stills import NoPicture, StillError, StillsWriter
from camd.stills import describe as plain
from camd.stills_index import DAY_RE, STEM_RE, Still, StillIndex, parse
from camd.web.context import current_parts
from camd.web.errors import error_response
from camd.web.thumbs import ThumbnailCache, make_thumbnail

log = logging.getLogger(__name__)

bp = Blueprint("stills", __name__)

# Private: a still needed a login, so no shared cache (a proxy, a CDN) may keep it.
IMMUTABLE = "private, max-age=31536000, immutable"
PAGE_SIZE = 48
API_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
ZIP_CHUNK = 256 * 1024


THUMBS = "camd.stills_thumbs"


def writer() -> StillsWriter:
    stills = current_parts().stills
    assert stills is not None  # the blueprint is registered only with a writer
    return stills


def thumbs() -> ThumbnailCache:
    cache: ThumbnailCache = current_app.extensions[THUMBS]
    return cache


def init_app(app: Flask) -> None:
    app.extensions[THUMBS] = ThumbnailCache()
    app.register_blueprint(bp)


# --- URLs: made here, not by the stills writer -------------------------------------------------


def url_of(still: Still) -> str:
    return url_for("stills.still", day=still.day, name=still.name)


def with_urls(values: dict[str, Any]) -> dict[str, Any]:
    """A still's plain values (``camd.stills.describe``) with its URLs."""
    url = url_for("stills.still", day=values["day"], name=values["name"])
    return {**values, "url": url, "thumb": url + "?thumb=1"}


def describe(still: Still) -> dict[str, Any]:
    """A still as the API, the pages and the status show it."""
    return with_urls(plain(still))


def status_view(status: dict[str, Any]) -> dict[str, Any]:
    """The writer's status, with the URLs of its last still."""
    last = status.get("last")
    return {**status, "last": with_urls(last) if last is not None else None}


# --- finding a file safely ------------------------------------------------------------------


def open_still(stills_dir: str | os.PathLike[str], day: str, name: str) -> tuple[IO[bytes], os.stat_result] | None:
    """The still's open file and its stat, or None unless it is camd's regular file inside the folder."""
    if parse(day, name) is None:
        return None
    root = os.path.realpath(stills_dir)
    folder = os.path.join(root, day)
    path = os.path.join(folder, name)
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        if os.path.realpath(path) != path or os.path.commonpath([root, path]) != root:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, "rb"), info
    except OSError:
        os.close(fd)
        return None


def etag_of(info: os.stat_result, kind: str = "") -> str:
    """Size and modification time: a still's file never changes, and nothing about the disk (inode) shows."""
    return f"{kind}{info.st_size:x}-{info.st_mtime_ns:x}"


def _not_found() -> NoReturn:
    abort(404)


# --- the files ------------------------------------------------------------------------------


@bp.route("/stills/<day>/<name>", methods=["GET", "HEAD"])
def still(day: str, name: str) -> Response | str:
    if not name.endswith(".jpg"):
        return viewer(day, name)
    opened = open_still(writer().root, day, name)
    if opened is None:
        return _not_found()
    handle, info = opened
    if request.args.get("thumb"):
        return _thumbnail(handle, info, day, name)
    response = Response(wrap_file(request.environ, handle), mimetype="image/jpeg", direct_passthrough=True)
    response.content_length = info.st_size
    response.last_modified = info.st_mtime  # type: ignore[assignment]
    response.set_etag(etag_of(info))
    response.headers["Cache-Control"] = IMMUTABLE
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.make_conditional(request.environ, accept_ranges=True, complete_length=info.st_size)
    return response


def _thumbnail(handle: IO[bytes], info: os.stat_result, day: str, name: str) -> Response:
    tag = etag_of(info, "t")
    key = f"{day}/{name}/{tag}"
    with handle:
        data = thumbs().get(key)
        if data is None:
            data = make_thumbnail(handle.read())
            if data is None:
                return _not_found()
            thumbs().put(key, data)
    response = Response(data, mimetype="image/jpeg")
    response.set_etag(tag)
    response.headers["Cache-Control"] = IMMUTABLE
    response.make_conditional(request.environ, accept_ranges=True, complete_length=len(data))
    return response


class _Pipe:
    """A write-only file that zipfile writes into and the response generator drains."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _zip_stream(stills_dir: Path, stills: list[Still]) -> Iterator[bytes]:
    """The zip, made as it is sent (runs outside the request context: it gets what it needs)."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[call-overload]
        for item in stills:
            opened = open_still(stills_dir, item.day, item.name)
            if opened is None:
                continue  # deleted since the list was made
            handle, info = opened
            with handle:
                member = zipfile.ZipInfo(item.name, time.localtime(info.st_mtime)[:6])
                member.compress_type = zipfile.ZIP_STORED
                member.file_size = info.st_size
                member.external_attr = 0o644 << 16
                with archive.open(member, "w") as out:
                    while block := handle.read(ZIP_CHUNK):
                        out.write(block)
                        yield pipe.drain()
            yield pipe.drain()
    yield pipe.drain()


@bp.get("/stills/<day>.zip")
def day_zip(day: str) -> Response:
    if not DAY_RE.fullmatch(day):
        return _not_found()
    stills = writer().index.of_day(day)
    if not stills:
        return _not_found()
    response = Response(_zip_stream(writer().root, stills), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="stills-{day}.zip"'
    response.headers["X-Accel-Buffering"] = "no"
    return response


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of stills, newest first, as ``?page=``, ``?per_page=`` and ``?day=`` ask."""

    items: list[Still]
    day: str | None
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))


def _page(index: StillIndex, default_size: int) -> Page:
    number, size = _page_args(default_size)
    day = _day_arg()
    items = index.newest(offset=(number - 1) * size, limit=size, day=day)
    return Page(items, day, number, size, index.count(day))


def _page_args(default_size: int) -> tuple[int, int]:
    try:
        page = int(request.args.get("page", "1"))
        size = int(request.args.get("per_page", str(default_size)))
    except ValueError:
        abort(400, description="page and per_page must be whole numbers")
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        abort(400, description=f"page must be at least 1 and per_page 1 to {MAX_PAGE_SIZE}")
    return page, size


def _day_arg() -> str | None:
    day = request.args.get("day") or None
    if day is not None and not DAY_RE.fullmatch(day):
        abort(400, description="day must look like YYYY-MM-DD")
    return day


@bp.get("/stills/")
def gallery() -> str:
    index = writer().index
    page = _page(index, PAGE_SIZE)
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for item in page.items:
        entry = {
            **describe(item),
            "view": url_for("stills.still", day=item.day, name=item.stem),
            "clock": time.strftime("%H:%M:%S", time.localtime(item.time)),
        }
        if not groups or groups[-1][0] != item.day:
            groups.append((item.day, []))
        groups[-1][1].append(entry)
    return render_template(
        "stills.html",
        title=current_parts().settings.title,
        groups=groups,
        days=index.days(),
        day=page.day,
        page=page.number,
        pages=page.pages,
        total=page.total,
        size=page.size,
        disk_bytes=index.total_bytes,
        status=writer().status(),
    )


def viewer(day: str, stem: str) -> str:
    """A page showing one still, with links to the older and newer ones."""
    if not STEM_RE.fullmatch(stem):
        return _not_found()
    item = writer().index.get(day, stem + ".jpg")
    if item is None:
        return _not_found()
    older, newer = writer().index.position(item)
    return render_template(
        "still.html",
        title=current_parts().settings.title,
        still=describe(item),
        clock=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.time)),
        older=url_for("stills.still", day=older.day, name=older.stem) if older else None,
        newer=url_for("stills.still", day=newer.day, name=newer.stem) if newer else None,
    )


# --- JSON -------------------------------------------------------------------------------------


@bp.get("/api/stills")
def api_list() -> Response:
    index = writer().index
    page = _page(index, API_PAGE_SIZE)
    return jsonify(
        stills=[describe(item) for item in page.items],
        page=page.number,
        per_page=page.size,
        total=page.total,
        pages=page.pages,
        disk_bytes=index.total_bytes,
    )


@bp.post("/api/stills")
def api_take() -> tuple[Response, int]:
    try:
        item = writer().take()
    except NoPicture as exc:
        return error_response(503, str(exc), retry_after=2), 503
    except StillError as exc:
        return error_response(507, str(exc)), 507
    response = jsonify(describe(item))
    response.headers["Location"] = url_of(item)
    return response, 201
