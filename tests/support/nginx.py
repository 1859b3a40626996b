"""A foreground nginx in a temp folder, on 127.0.0.1 and a given port, serving the locations a test hands it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support import stop_process, wait_until


def write_conf(temp: Path, port: int, locations: str, *, module: str = "", top: str = "") -> Path:
    """``temp/nginx.conf``, all nginx files in ``temp``; ``module`` is loaded, ``top`` comes before ``http``."""
    conf = temp / "nginx.conf"
    conf.write_text(
        f"""
{f"load_module {module};" if module else ""}
daemon off;
master_process off;
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
events {{}}
{top}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""
    )
    return conf


@contextlib.contextmanager
def running(binary: str, conf: Path, ready: Callable[[], bool]) -> Iterator[subprocess.Popen[str]]:
    """nginx on ``conf`` until the block ends; fails with nginx's own words if it exits before ``ready()``."""
    proc = subprocess.Popen([binary, "-p", str(conf.parent), "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: proc.poll() is not None or ready(), 15, what="nginx to listen")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        stop_process(proc)
