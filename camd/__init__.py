"""camd: a camera daemon that streams MJPEG, saves stills and stays up."""

__version__ = "0.1.0"
