"""ASGI middleware that guards the app: the body limit, text that no UTF-8 can carry, the security headers."""

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is a 413, found from Content-Length before reading
    or by counting the bytes of a chunked body as they arrive."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException

        message = f"the request body is larger than {self.max_bytes} bytes (the server's --max-body-bytes)"
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        too_large = declared.isdigit() and int(declared) > self.max_bytes
        seen = 0

        async def limited_receive():
            nonlocal seen
            if too_large:  # raised where the app reads the body, so its error handlers answer
                raise HTTPException(413, message)
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, message)
            return msg

        return await self.app(scope, limited_receive, send)


def printable_json(value: Any) -> Any:
    """Strings that UTF-8 can carry, with lone surrogates written as backslash escapes, throughout a JSON value."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable_json(k): printable_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_json(v) for v in value]
    return value


_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str, invalid_bytes: bool = False) -> Optional[str]:
    """What makes a string unfit as text: a NUL character or a lone surrogate (which no UTF-8 can carry).

    invalid_bytes (bool): The string was decoded with "surrogateescape": U+DC80-U+DCFF stand for bytes that are
        not UTF-8.
    RETURNS (Optional[str]): The problem, or None.
    """
    m = _BAD_CHAR.search(value)
    if m is None:
        return None
    char = ord(m.group())
    if char == 0:
        return f"contains a NUL character (U+0000) at character {m.start()}: send plain text"
    if invalid_bytes and 0xDC80 <= char <= 0xDCFF:
        return f"not valid UTF-8 (byte 0x{char - 0xDC00:02X} at character {m.start()}): send UTF-8 text"
    return (
        f"contains a lone surrogate (U+{char:04X}) at character {m.start()}, which is not valid Unicode "
        "text: send UTF-8 text"
    )


def _json_problem(body: bytes) -> Optional[str]:
    """The first JSON key or string that is not fit as text, as `field: problem`."""
    try:
        body.decode("utf-8")
        invalid = None
    except UnicodeDecodeError as e:
        invalid = f"body: not valid UTF-8 (byte 0x{e.object[e.start]:02X} at byte {e.start}): send UTF-8 JSON"
    try:
        parsed = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        return invalid  # not JSON: the app says so, unless it was not UTF-8 either

    def walk(value: Any, path: str) -> Optional[str]:
        if isinstance(value, str):
            problem = text_problem(value, invalid_bytes=invalid is not None)
            return f"{path}: {problem}" if problem else None
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and text_problem(key, invalid is not None):
                return f"{path}: a field name {text_problem(key, invalid is not None)}"
            found = walk(item, f"{key}" if path == "body" else f"{path}.{key}")
            if found:
                return found
        return None

    return walk(parsed, "body") or invalid


def _form_problem(pairs: Sequence[Tuple[bytes, bytes]]) -> Optional[str]:
    """The first form field (name, value as bytes) that is not fit as text, as `field: problem`."""
    for name, value in pairs:
        shown = name.decode("utf-8", "surrogateescape")
        for part, raw in (("a field name", name), (None, value)):
            try:
                problem = text_problem(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                problem = f"not valid UTF-8 (byte 0x{raw[e.start]:02X} at byte {e.start}): send UTF-8 text"
            if problem:
                where = "body" if part else shown.encode("utf-8", "backslashreplace").decode("utf-8")
                return f"{where}: {part + ' ' if part else ''}{problem}"
    return None


def _urlencoded_fields(body: bytes) -> List[Tuple[bytes, bytes]]:
    from urllib.parse import unquote_to_bytes

    pairs = []
    for item in body.split(b"&"):
        if item:
            name, _, value = item.partition(b"=")
            pairs.append((unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))))
    return pairs


def _multipart_fields(body: bytes, boundary: bytes) -> List[Tuple[bytes, bytes]]:
    """(name, value) of each part that is not a file (a file's bytes are its reader's business)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts: List[Tuple[Dict[bytes, bytes], List[bytes]]] = []
    header = {"field": b"", "value": b""}

    def on_part_begin():
        parts.append(({}, []))

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        parts[-1][0][header["field"].lower()] = header["value"]
        header.update(field=b"", value=b"")

    def on_part_data(data, start, end):
        parts[-1][1].append(data[start:end])

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001  (malformed: the app's own parser answers it)
        return []
    fields = []
    for headers, data in parts:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        if b"filename" not in options:
            fields.append((options.get(b"name", b""), b"".join(data)))
    return fields


class TextGuard:
    """ASGI middleware: every field of a JSON, form or multipart body must be text: UTF-8, without lone
    surrogates or NUL characters; else a 422 naming the field. One check for every route, present and future,
    before any of them sees the text (a lone surrogate cannot even be written back in a response)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.exceptions import HTTPException
        from starlette.concurrency import run_in_threadpool

        content_type = Headers(scope=scope).get("content-type", "")
        kind = content_type.split(";", 1)[0].strip().lower()
        if not (
            kind == "application/json"
            or kind.endswith("+json")
            or kind == "application/x-www-form-urlencoded"
            or kind == "multipart/form-data"
        ):
            return await self.app(scope, receive, send)
        messages: List[Dict[str, Any]] = []
        checked = False

        async def checked_receive():
            nonlocal checked
            if checked:
                return messages.pop(0) if messages else await receive()
            body = b""
            while True:  # the body limit, outside, stops an endless one
                msg = await receive()
                messages.append(msg)
                if msg["type"] != "http.request":
                    break
                body += msg.get("body", b"")
                if not msg.get("more_body", False):
                    break
            checked = True
            problem = await run_in_threadpool(_body_problem, kind, content_type, body)
            if problem:  # raised where the app reads the body, so its error handlers answer
                raise HTTPException(422, problem)
            return messages.pop(0)

        return await self.app(scope, checked_receive, send)


def _body_problem(kind: str, content_type: str, body: bytes) -> Optional[str]:
    if kind == "application/x-www-form-urlencoded":
        return _form_problem(_urlencoded_fields(body))
    if kind == "multipart/form-data":
        from python_multipart.multipart import parse_options_header

        boundary = parse_options_header(content_type)[1].get(b"boundary")
        return _form_problem(_multipart_fields(body, boundary)) if boundary else None
    return _json_problem(body)


SECURITY_HEADERS = (
    # the page has inline CSS (its own and displaCy's style attributes), no scripts, and posts only to itself
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, error pages and refused hosts included."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS if k.encode() not in present]
                msg = {**msg, "headers": [*msg.get("headers", []), *extra]}
            await send(msg)

        return await self.app(scope, receive, send_with_headers)
