"""Weight files named by URL or short name: downloaded once into a cache folder, sha256-checked.

A local path is used as it is (the default everywhere, and in the tests). `https://...` (or
`http://`) is downloaded into the cache folder (one sub-folder per URL) under the URL's own file
name, with progress on the log; a `file://` URL is recognised and refused (copy the file). The
file is written to a temporary name and renamed only after its sha256 matched, so a broken
download never stands in the cache. Short names (`KNOWN_WEIGHTS`) stand for the published
torchvision ImageNet ResNets, whose file names carry the first 8 hex digits of their sha256,
which is checked (as torchvision itself does).
"""

import hashlib
import http.client
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ddag.errors import CheckpointError
from ddag.utils.logging import get_logger

log = get_logger(__name__)

CACHE_ENV = "DDAG_CACHE"
URL_SCHEMES = ("https", "http", "file")
_CHUNK = 1 << 20
HTML_STARTS = (b"<!doctype html", b"<html")


@dataclass(frozen=True)
class KnownWeights:
    """A published weight file: where it is and the start (or all) of its sha256."""

    url: str
    sha256_prefix: str


# torchvision's ImageNet weights (IMAGENET1K_V1, the ones the DDAG paper starts from).
TORCHVISION_MODELS = "https://download.pytorch.org/models/"
KNOWN_WEIGHTS = {
    f"{arch}_tv": KnownWeights(f"{TORCHVISION_MODELS}{arch}-{prefix}.pth", prefix)
    for arch, prefix in (
        ("resnet18", "f37072fd"),
        ("resnet34", "b627a593"),
        ("resnet50", "0676ba61"),
        ("resnet101", "63fe2227"),
        ("resnet152", "394f9c45"),
    )
}
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


def default_cache_dir() -> Path:
    """$DDAG_CACHE, else ~/.cache/ddag."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ddag")


def is_remote(source: str) -> bool:
    """Whether `source` is a URL or a short name rather than a local path."""
    return source in KNOWN_WEIGHTS or urllib.parse.urlparse(source).scheme in URL_SCHEMES


def _file_name(url: str) -> str:
    """A plain file name for the cached copy: the URL's last path segment, nothing that climbs."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name or name in (".", "..") or not re.fullmatch(r"[\w.\-]+", name):
        raise CheckpointError(f"{url}: the URL does not end in a usable file name")
    return name


def resolve_weights(
    source: str, cache_dir: Optional[Path] = None, sha256: Optional[str] = None
) -> Path:
    """A local path for `source`: a path as given, or the cached download of a URL/short name.

    Args:
        source: a local path, a URL, or a key of KNOWN_WEIGHTS.
        cache_dir: where downloads are kept (default `default_cache_dir()`).
        sha256: expected digest (or its first >= 8 hex digits) of a URL's file; short names
            bring their own. A cached file is checked again before it is used.
    """
    if not is_remote(source):
        return Path(source)
    known = KNOWN_WEIGHTS.get(source)
    url = known.url if known else source
    expected = (sha256 or (known.sha256_prefix if known else "") or "").lower()
    if expected and not _HEX.match(expected):
        raise CheckpointError(f"sha256 {sha256!r} is not 8 to 64 hex digits")
    # One sub-folder per URL, so two URLs that end in the same file name never share a copy.
    url_key = hashlib.sha256(url.encode()).hexdigest()[:16]
    folder = (Path(cache_dir) if cache_dir else default_cache_dir()) / url_key
    target = folder / _file_name(url)
    if target.is_file():
        _check_digest(target, expected, url)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    _download(url, target, expected)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_digest(path: Path, expected: str, url: str) -> None:
    if not expected:
        log.warning("%s: no sha256 given, the file is used unchecked", url)
        return
    actual = _sha256(path)
    if not actual.startswith(expected):
        raise CheckpointError(
            f"{path} (from {url}) has sha256 {actual}, expected {expected}...: the download is "
            "damaged or not the published file; it was not used"
        )


def read_downloaded(source: str, reader, sha256: Optional[str] = None):
    """(`reader(path)`, path) of `source`'s local path (`resolve_weights`); a cached download
    that the reader refuses is deleted, so the next run fetches it again instead of failing."""
    path = resolve_weights(source, sha256=sha256)
    try:
        return reader(path), path
    except CheckpointError as err:
        if is_remote(source):
            path.unlink(missing_ok=True)
            raise CheckpointError(f"{err} (the cached copy {path} was removed)") from None
        raise


def fetch_file(url: str, target: Path, sha256: str, max_bytes: Optional[int] = None) -> Path:
    """`url` downloaded once to `target` (a data file with a known sha256, e.g. a split file).

    A file already at `target` is kept when its sha256 matches and refused otherwise (it is
    never overwritten: it may be the user's own copy). The download is written to a temporary
    name beside `target`, checked, then renamed.
    """
    target = Path(target)
    if urllib.parse.urlparse(url).scheme not in ("https", "http"):
        raise CheckpointError(
            f"{url}: only http(s) URLs are fetched; copy a local file into place yourself"
        )
    if target.is_file():
        _check_digest(target, sha256, url)
        log.info("%s is present and its sha256 matches", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _download(url, target, sha256, max_bytes)
    return target


@dataclass(frozen=True)
class DownloadLimits:
    """What one download may cost: bytes, total seconds, and the slowest average rate
    tolerated once `grace_s` have passed (a server that trickles a byte every few seconds
    would otherwise hold the run forever)."""

    max_bytes: int = 4 << 30
    deadline_s: float = 3600.0
    min_bytes_per_s: float = 16 << 10
    grace_s: float = 30.0
    read_timeout_s: float = 60.0
    headers_s: float = 60.0


class _HeaderWatch:
    """Shuts the sockets of a request whose response headers (redirects included) have not all
    arrived within `seconds`. urlopen's timeout bounds each read, so a server sending a header
    byte every few seconds would otherwise hold the download forever."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._sockets, self._lock = [], threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def connection(self, base):
        """`base` (an http.client connection class) that registers its socket here."""
        watch = self

        class Watched(base):
            def connect(self):
                super().connect()
                with watch._lock:
                    watch._sockets.append(self.sock)
                    if watch.expired:
                        watch._shut(self.sock)

        return Watched

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on it
        except OSError:
            pass

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def _open(url: str, limits: DownloadLimits):
    """urlopen(url) whose response headers must all arrive within `limits.headers_s`."""
    watch = _HeaderWatch(limits.headers_s)

    class Watching:  # before urllib's HTTP(S) handler: their connections register here
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(watch.connection(http_class), req, **kwargs)

    handlers = (urllib.request.HTTPHandler, urllib.request.HTTPSHandler)
    opener = urllib.request.build_opener(*(type("Watched", (Watching, h), {}) for h in handlers))
    try:
        with watch:
            return opener.open(url, timeout=limits.read_timeout_s)
    except (OSError, http.client.HTTPException):
        if watch.expired:
            raise CheckpointError(
                f"{url} did not send its response headers within {limits.headers_s:.0f} s "
                "(a server trickling them); stopped, nothing was kept"
            ) from None
        raise


def _download(
    url: str,
    target: Path,
    expected: str,
    max_bytes: Optional[int] = None,
    limits: DownloadLimits = DownloadLimits(),
) -> None:
    """Fetch `url` to a temporary file beside `target`, check it, rename it to `target`.

    Refused, and nothing kept: more bytes than allowed (announced or sent), less free disk than
    announced, a body shorter or longer than its Content-Length, an HTML page (an error or
    login page served in place of the file), a deadline or minimum rate missed, a sha256
    mismatch.
    """
    cap = min(max_bytes or limits.max_bytes, limits.max_bytes)
    start, tmp = time.monotonic(), None
    try:
        with _open(url, limits) as response:
            total = int(response.headers.get("Content-Length") or 0)
            if total > cap:
                raise CheckpointError(
                    f"{url} announces {total} bytes, more than the {cap} allowed; it was not "
                    "downloaded"
                )
            free = shutil.disk_usage(target.parent).free
            if total and total > free:
                raise CheckpointError(
                    f"{url} announces {total} bytes, and {target.parent} has {free} free; free "
                    f"space or set {CACHE_ENV} to a larger disk"
                )
            if "text/html" in (response.headers.get("Content-Type") or "").lower():
                raise CheckpointError(_html_refusal(url))
            # The temporary file exists only once the server has answered.
            fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
            with os.fdopen(fd, "wb") as out:
                done = _receive(url, response, out, total, cap, start, target, limits)
        if total and done != total:
            raise CheckpointError(
                f"{url} sent {done} bytes where it announced {total}; the download is "
                f"{'incomplete' if done < total else 'not the announced file'} and was not kept"
            )
        _check_digest(Path(tmp), expected, url)
        os.replace(tmp, target)
    except (OSError, http.client.HTTPException) as err:
        raise CheckpointError(f"cannot download {url}: {err}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _receive(url, response, out, total, cap, start, target, limits) -> int:
    """The body of `response` written to `out` within the limits; the bytes received."""
    done, next_report = 0, 0.0
    log.info("downloading %s -> %s", url, target)
    read, raw = _body_reader(response, total)
    while True:
        if raw is not None and done >= total:
            _shorten_timeout(raw)  # only a server sending more than announced answers
        try:
            block = read(_CHUNK)
        except TimeoutError:
            if raw is not None and done >= total:
                break
            raise
        if not block:
            break
        if done == 0 and block.lstrip()[:15].lower().startswith(HTML_STARTS):
            raise CheckpointError(_html_refusal(url))
        out.write(block)
        done += len(block)
        _check_progress(url, done, cap, start, limits)
        if total and done / total >= next_report:
            log.info("  %3.0f%% of %.1f MiB", 100 * done / total, total / 2**20)
            next_report += 0.25
    return done


def _body_reader(response, total: int):
    """(read function, raw socket file or None) for the body. With a Content-Length the socket
    is read directly, past the announced end, so a body longer than announced is caught
    (urllib asks the server to close the connection after the response)."""
    raw = getattr(response, "fp", None)
    chunked = "chunked" in (response.headers.get("Transfer-Encoding") or "").lower()
    if not total or chunked or raw is None or not hasattr(raw, "read1"):
        return getattr(response, "read1", response.read), None
    return raw.read1, raw


def _shorten_timeout(raw) -> None:
    sock = getattr(getattr(raw, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(2.0)


def _check_progress(url: str, done: int, cap: int, start: float, limits: DownloadLimits) -> None:
    elapsed = time.monotonic() - start
    if done > cap:
        raise CheckpointError(
            f"{url} sent more than {cap} bytes, more than allowed; the download was stopped and "
            "not kept"
        )
    if elapsed > limits.deadline_s:
        raise CheckpointError(
            f"{url}: the download took longer than {limits.deadline_s:.0f} s and was stopped"
        )
    if elapsed > limits.grace_s and done / elapsed < limits.min_bytes_per_s:
        raise CheckpointError(
            f"{url} sends {done / elapsed:.0f} bytes/s, below the {limits.min_bytes_per_s:.0f} "
            "bytes/s a download must keep; stopped (try again later or download by hand)"
        )


def _html_refusal(url: str) -> str:
    return (
        f"{url} answered with an HTML page, not the file (an error or sign-in page); nothing "
        "was kept. Open the URL in a browser, or download the file by hand and give its path"
    )
