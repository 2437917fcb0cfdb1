"""Downloads of weight files (ddag/checkpoints/download.py): misbehaving servers are stopped,
nothing half-written is kept.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import http.server
import time

import pytest

from ddag.checkpoints.torch_files import load_torch_file
from ddag.errors import CheckpointError
from tests.loopback import serving

# 6. Downloads ---------------------------------------------------------------------------------


class _Server(http.server.BaseHTTPRequestHandler):
    """Loopback answers that misbehave as the path says."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind = self.path.strip("/").split(".")[0]
        if kind == "slowheaders":  # one header byte every 0.2 s, each within the read timeout
            try:
                for byte in b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\nX-Pad: " + b"p" * 200:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return
            return
        self.send_response(200)
        if kind == "endless":
            self.end_headers()
            try:
                while True:
                    self.wfile.write(bytes(1 << 16))
            except OSError:
                return
        if kind == "trickle":
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(40):
                time.sleep(0.1)
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
            return
        body = {"short": b"x" * 500, "long": b"y" * 2000, "html": b"<!DOCTYPE html><p>sign in"}
        announced = {"short": 1000, "long": 1000, "html": len(body["html"])}
        self.send_header("Content-Length", str(announced[kind]))
        self.end_headers()
        self.wfile.write(body[kind])


@pytest.fixture
def bad_server():
    with serving(handler=_Server) as (base, _):
        yield base


@pytest.mark.parametrize(
    "name, message",
    [
        ("endless.pth", "sent more than 1048576 bytes"),
        ("trickle.pth", "bytes/s, below"),
        ("short.pth", "sent 500 bytes where it announced 1000"),
        ("long.pth", "where it announced 1000"),
        ("html.pth", "answered with an HTML page"),
        ("slowheaders.pth", "did not send its response headers within 2 s"),
    ],
)
def test_a_misbehaving_download_is_stopped_and_nothing_is_kept(name, message, bad_server, tmp_path):
    from ddag.checkpoints.download import DownloadLimits, _download

    limits = DownloadLimits(max_bytes=1 << 20, grace_s=1.0, min_bytes_per_s=1000, headers_s=2.0)
    target = tmp_path / name
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=message):
        _download(f"{bad_server}/{name}", target, "", limits=limits)
    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


def test_a_cached_download_that_fails_to_load_is_removed(tmp_path, monkeypatch):
    from ddag.checkpoints.download import read_downloaded

    monkeypatch.setenv("DDAG_CACHE", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights.pth").write_bytes(b"not a zip")
    with serving(served) as (base, _):
        with pytest.raises(CheckpointError, match="was removed"):
            read_downloaded(f"{base}/weights.pth", load_torch_file)
    assert not list((tmp_path / "cache").rglob("weights.pth"))
