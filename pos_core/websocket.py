"""RFC 6455 WebSocket, the parts the device channel needs: the handshake's
accept key, a frame reader that refuses hostile input before it costs
memory, a frame writer, and the device channel's client messages.

The reader works on any object with ``recv(n)`` (a socket, blocking or with
a timeout); under Odoo's gevent process the socket is cooperative, so a
connection waiting for its client costs a greenlet and no thread. Every
refusal is a :class:`ProtocolError` carrying the close code the peer gets
(:mod:`events` ``CLOSE_*``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import dataclass

from . import events, limits

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})
MAX_CONTROL_PAYLOAD = 125
# Close codes a peer may send (RFC 6455 7.4.1 and the registered range);
# 1005, 1006 and 1015 are reserved for reporting, never sent.
_SENDABLE_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})


class ProtocolError(Exception):
    """The peer broke the protocol: close the connection with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ConnectionClosed(Exception):
    """The peer went away (end of stream) without a close frame, or mid-frame."""


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket handshake: answer ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------- handshake
def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def check_handshake(headers) -> str:
    """The accept key for a valid upgrade request (``headers``: a mapping
    with case-insensitive keys); :class:`HandshakeError` otherwise (426
    when only the version is wrong, so that the client can retry)."""
    if (headers.get("Upgrade") or "").lower() != "websocket":
        raise HandshakeError(400, "The request must carry Upgrade: websocket.")
    connection = [token.strip().lower() for token in (headers.get("Connection") or "").split(",")]
    if "upgrade" not in connection:
        raise HandshakeError(400, "The request must carry Connection: Upgrade.")
    if headers.get("Sec-WebSocket-Version") != SUPPORTED_VERSION:
        raise HandshakeError(426, f"Only WebSocket version {SUPPORTED_VERSION} is supported.")
    key = headers.get("Sec-WebSocket-Key") or ""
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64.")
    return accept_key(key)


def client_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


# ---------------------------------------------------------------- frames
def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False
) -> bytes:
    """One frame. Servers send unmasked frames; clients must mask theirs."""
    head = (0x80 if fin else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", head, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", head, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", head, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _mask(payload, key)


def text_frame(text: str | bytes, *, mask: bool = False) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return encode_frame(OP_TEXT, data, mask=mask)


def close_payload(code: int, reason: str = "") -> bytes:
    # A control frame's payload is at most 125 bytes: 2 for the code.
    return struct.pack("!H", code) + reason.encode()[: MAX_CONTROL_PAYLOAD - 2]


def close_frame(code: int, reason: str = "", *, mask: bool = False) -> bytes:
    return encode_frame(OP_CLOSE, close_payload(code, reason), mask=mask)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame; no payload means 1005 (no code)."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "close payload of one byte")
    (code,) = struct.unpack("!H", payload[:2])
    if code not in _SENDABLE_CLOSE and not 3000 <= code <= 4999:
        raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(events.CLOSE_INVALID_DATA, "close reason is not UTF-8") from exc
    return code, reason


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    # XOR as big integers: no per-byte Python loop.
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


@dataclass(frozen=True)
class Message:
    """A complete data message (text decoded to ``str``) or a control frame."""

    opcode: int
    data: bytes | str


class FrameReader:
    """Reads messages from ``sock``: text and binary messages (reassembled
    from their fragments), pings, pongs and closes, in arrival order.

    Refused before reading their payload: unmasked frames from a client
    (``require_mask``), reserved bits, unknown opcodes, fragmented or long
    control frames, continuation frames out of place, a frame or message
    over ``max_message`` bytes. Text must be UTF-8 (checked on the complete
    message: a character may span fragments)."""

    def __init__(self, sock, *, max_message: int = limits.MAX_WS_MESSAGE_BYTES, require_mask=True):
        self.sock = sock
        self.max_message = max_message
        self.require_mask = require_mask
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode: int | None = None
        self._fragment_size = 0

    def _fill(self, size: int):
        """Receive until ``size`` bytes are buffered. Nothing is consumed
        before a whole frame is there, so a socket timeout (an idle client)
        loses nothing: the next call carries on."""
        while len(self._buffer) < size:
            chunk = self.sock.recv(max(size - len(self._buffer), 4096))
            if not chunk:
                raise ConnectionClosed("end of stream")
            self._buffer += chunk

    def buffered(self) -> bool:
        """Whether bytes already received wait to be parsed."""
        return bool(self._buffer)

    def read_frame(self) -> tuple[bool, int, bytes]:
        self._fill(2)
        first, second = self._buffer[0], self._buffer[1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
            raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        masked, length = bool(second & 0x80), second & 0x7F
        if self.require_mask and not masked:
            raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if not self.require_mask and masked:
            raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "server frames must not be masked")
        if opcode in CONTROL_OPCODES and (not fin or length > MAX_CONTROL_PAYLOAD):
            raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "fragmented or long control frame")
        offset = 2
        if length == 126:
            self._fill(4)
            (length,) = struct.unpack_from("!H", self._buffer, 2)
            offset = 4
        elif length == 127:
            self._fill(10)
            (length,) = struct.unpack_from("!Q", self._buffer, 2)
            offset = 10
            if length >> 63:
                raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "frame length over 2**63")
        if opcode in DATA_OPCODES and self._fragment_size + length > self.max_message:
            raise ProtocolError(events.CLOSE_TOO_BIG, f"message over {self.max_message} bytes")
        key_size = 4 if masked else 0
        self._fill(offset + key_size + length)
        key = bytes(self._buffer[offset : offset + key_size])
        start = offset + key_size
        payload = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        return fin, opcode, _mask(payload, key) if masked else payload

    def read_message(self) -> Message:
        while True:
            fin, opcode, payload = self.read_frame()
            if opcode in CONTROL_OPCODES:
                return Message(opcode, payload)
            if opcode == OP_CONTINUATION:
                if self._fragment_opcode is None:
                    raise ProtocolError(events.CLOSE_PROTOCOL_ERROR, "continuation of nothing")
            elif self._fragment_opcode is not None:
                raise ProtocolError(
                    events.CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one"
                )
            else:
                self._fragment_opcode = opcode
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if not fin:
                continue
            data = b"".join(self._fragments)
            opcode = self._fragment_opcode
            self._fragments, self._fragment_opcode, self._fragment_size = [], None, 0
            if opcode == OP_TEXT:
                try:
                    return Message(OP_TEXT, data.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise ProtocolError(events.CLOSE_INVALID_DATA, "text is not UTF-8") from exc
            return Message(opcode, data)


# --------------------------------------------- the device channel's messages
# What a device sends: {"type": "auth", "token": "..."} (when the handshake
# carried no Authorization header) and {"type": "subscribe", "rooms": [...],
# "after": <seq or null>}. The server answers with the messages below and
# pushes events as envelopes (events.envelope: they carry "seq", these do not).
AUTH, SUBSCRIBE = "auth", "subscribe"
CLIENT_TYPES = frozenset({AUTH, SUBSCRIBE})
AUTHENTICATED = "authenticated"  # {"type", "device_id", "expires_at"}
SUBSCRIBED = "subscribed"  # {"type", "rooms", "last_seq", "resync"}
MAX_TOKEN_LENGTH = 4096


def parse_client_message(text: str) -> dict:
    """A client message, checked for shape: :class:`ProtocolError` 1007 for
    what is not a JSON object of the right fields, 1003 for an unknown type."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(events.CLOSE_INVALID_DATA, "the message is not JSON") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError(events.CLOSE_INVALID_DATA, "a message is an object with a type")
    kind = message["type"]
    if kind not in CLIENT_TYPES:
        raise ProtocolError(events.CLOSE_UNSUPPORTED, f"unknown message type {kind[:32]!r}")
    if kind == AUTH:
        token = message.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise ProtocolError(events.CLOSE_INVALID_DATA, "auth needs a token string")
        return {"type": AUTH, "token": token}
    rooms = message.get("rooms", [])
    after = message.get("after")
    if not isinstance(rooms, list) or not all(isinstance(name, str) for name in rooms):
        raise ProtocolError(events.CLOSE_INVALID_DATA, "rooms is a list of room names")
    if after is not None and (
        isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= limits.MAX_INT
    ):
        raise ProtocolError(events.CLOSE_INVALID_DATA, "after is a sequence number or null")
    return {"type": SUBSCRIBE, "rooms": rooms, "after": after}
