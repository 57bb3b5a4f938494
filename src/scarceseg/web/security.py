"""Security of the browser app: paths that stay inside the opened folder, a token, body size and host checks.

The server binds 127.0.0.1 by default. On any other address it refuses to start without a token
(:func:`check_bind`); with a token every request must carry it (header ``Authorization: Bearer T`` or
``X-Scarceseg-Token: T``, a ``token`` query parameter, or the cookie the page sets after its first load).
Without a token (loopback only), the ``Host`` header must name the loopback address, so a web page on
another site cannot reach the server through DNS rebinding. With or without a token, a request that changes
something and carries an ``Origin`` must come from the app's own origin (scheme, host and port): a page
served by another local port (``http://localhost:3000``) is another origin and is refused, although
browsers count it as the same *site* (cookies marked SameSite go along). Request bodies are limited in
size (413) before they are read. Error messages lose absolute server paths (:func:`redact`).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from scarceseg.errors import InputError

TOKEN_COOKIE = "scarceseg_token"
TOKEN_HEADER = "x-scarceseg-token"
USER_HEADER = "x-scarceseg-user"
DEFAULT_MAX_BODY = 64 * 1024  # bytes: clicks and picks are a few dozen bytes
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


class PathOutside(InputError):
    """A path that leaves the opened folder (``..``, an absolute path, a symlink pointing out)."""


def inside(root: str | Path, relative: str | Path) -> Path:
    """``root / relative`` resolved (symlinks followed), refused unless it stays inside ``root``.

    Parameters
    ----------
    root : str or Path
        The folder everything must stay in.
    relative : str or Path
        A path relative to ``root``; absolute paths, drive letters and NUL bytes are refused outright.

    Returns
    -------
    Path
        The resolved path (it need not exist).

    Raises
    ------
    PathOutside
    """
    text = str(relative)
    if "\0" in text or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text) or Path(text).is_absolute():
        raise PathOutside(None, f"absolute paths are not allowed: {text!r}")
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target != base and not target.is_relative_to(base):
        raise PathOutside(None, f"path {text!r} leaves the opened folder")
    return target


def check_inside(root: str | Path, path: str | Path) -> Path:
    """An absolute ``path`` resolved (symlinks followed) and refused unless it lies inside ``root``."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target != base and not target.is_relative_to(base):
        raise PathOutside(None, f"{path} leaves the opened folder {base}")
    return target


def check_writable(workdir: str | Path, path: str | Path) -> Path:
    """``path`` (inside ``workdir``) if writing there stays in ``workdir``: no folder on the way links out.

    Raises
    ------
    InputError
        A symbolic link on the way leads out of ``workdir`` (400: a refused write, not a missing file).
    """
    try:
        return check_inside(workdir, path)
    except PathOutside:
        raise InputError(path, "a symbolic link on the way leads out of WORKDIR; refusing to write there") from None


def check_user(name: str) -> str:
    """A user name safe as a folder name: 1-64 of letters, digits, ``_ . @ -`` (not starting with a dot)."""
    if not isinstance(name, str) or not _USER_RE.match(name):  # the name is not repeated: it may be anything
        raise InputError(None, "user name must be 1-64 letters, digits, '_', '.', '@' or '-', not starting "
                               "with a dot or a symbol")
    return name


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token the server will require: ``token``; a new random one on a non-loopback ``host``; else None."""
    if token is not None:
        if len(token) < 16:
            raise InputError(None, "--token must be at least 16 characters")
        return token
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(24)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def host_allowed(host_header: str | None) -> bool:
    """Whether a request's ``Host`` names the loopback server (``127.0.0.1:PORT``, ``localhost``, ``[::1]``)."""
    if not host_header:
        return False
    host = host_header.split("]")[0] + "]" if host_header.startswith("[") else host_header.split(":")[0]
    return host.lower() in LOOPBACK_NAMES


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(origin: str | None, scheme: str, host_header: str | None) -> bool:
    """Whether an ``Origin`` header names this server as the request reached it: ``scheme://Host``.

    Scheme, host and port must all match (a missing port is the scheme's default); ``null`` and
    anything unparsable never match.
    """
    if not origin or not host_header:
        return False
    try:
        given = urlsplit(origin.strip())
        own = urlsplit(f"{scheme}://{host_header.strip()}")
        if given.path not in ("", "/") or given.query or given.username or given.password:
            return False
        ports = [u.port or _DEFAULT_PORTS.get(u.scheme.lower()) for u in (given, own)]
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        return False
    return (given.scheme.lower() == own.scheme.lower() and given.hostname is not None
            and given.hostname == own.hostname and ports[0] == ports[1] and ports[0] is not None)


# an absolute POSIX path of two or more parts (not the '//' of a URL), or a Windows drive path: the last part is kept
_ABS_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"<>:,;()\[\]]+)+/(?P<name>[^\s/'\"<>:,;()\[\]]*)"
                       r"|(?<![\w])[A-Za-z]:\\(?:[^\s\\/'\"<>:,;()\[\]]+\\)*(?P<wname>[^\s\\/'\"<>:,;()\[\]]*)")


def redact(text: str, roots: Mapping[str | Path, str] | None = None) -> str:
    """``text`` without absolute server paths, for an answer to a client.

    Paths under one of ``roots`` become relative to it, prefixed with its label (``{WORKDIR: "WORKDIR"}``;
    an empty label leaves the path relative); any other absolute path is cut to its last part.
    """
    for root, label in sorted((roots or {}).items(), key=lambda kv: -len(str(kv[0]))):
        base = str(root).rstrip("/\\")
        if not base:
            continue
        for sep in ("/", "\\"):
            text = text.replace(base + sep, f"{label}/" if label else "")
        text = re.sub(re.escape(base) + r"(?![\w.-])", label or ".", text)
    return _ABS_PATH.sub(lambda m: m.group("name") if m.group("name") is not None else m.group("wname"), text)


class BodyLimit:
    """ASGI middleware: answer 413 to bodies above ``max_bytes`` (by Content-Length, or while reading)."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                await _plain(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
        # read the (small) body here, up to the limit, then hand it to the app in one message
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await _plain(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
