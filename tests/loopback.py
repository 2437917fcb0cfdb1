"""A loopback HTTP server for the download tests (never a real host)."""

import contextlib
import http.server
import threading
from functools import partial


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(folder=None, handler=None):
    """(base URL, server) of a loopback server over `folder`, or with a handler class."""
    handler = handler or partial(_QuietFiles, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
