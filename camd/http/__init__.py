"""camd's HTTP front: accept, TLS, parse (h11), dispatch to a worker pool, write, and the stream fan-out."""

from camd.http.fanout import Fanout, StreamBody
from camd.http.front import HttpServer
from camd.http.listen import BindError, bind
from camd.http.parts import BOUNDARY, CONTENT_TYPE
from camd.http.tls import TlsError, server_context
from camd.http.wsgi import Pause

__all__ = [
    "BOUNDARY",
    "CONTENT_TYPE",
    "BindError",
    "Fanout",
    "HttpServer",
    "Pause",
    "StreamBody",
    "TlsError",
    "bind",
    "server_context",
]
