"""The RFC 6455 codec: good frames round-trip, hostile ones get their close code.

Frames travel over a real socket pair, as they do from a device."""

import socket
import struct
import threading

import pytest

from pos_core import events, limits
from pos_core import websocket as ws


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    yield left, right
    left.close()
    right.close()


def _server_reader(sock, **kwargs):
    return ws.FrameReader(sock, **kwargs)


def test_accept_key_of_the_rfc_example():
    # RFC 6455 section 1.3.
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_checks():
    good = {
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    assert ws.check_handshake(good) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    for change, status in (
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "close"}, 400),
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Sec-WebSocket-Key": "!!!!"}, 400),
    ):
        with pytest.raises(ws.HandshakeError) as caught:
            ws.check_handshake({**good, **change})
        assert caught.value.status == status, change


def test_masked_text_round_trip_and_sizes(pair):
    client, server = pair
    reader = _server_reader(server, max_message=1 << 17)
    for size in (0, 5, 125, 126, 127, 65535, 65536, 70001):
        text = "é" * (size // 2) + "x" * (size % 2)
        sender = threading.Thread(target=client.sendall, args=(ws.text_frame(text, mask=True),))
        sender.start()
        message = reader.read_message()
        sender.join(5)
        assert message == ws.Message(ws.OP_TEXT, text)
    # The default bound, exactly.
    text = "x" * limits.MAX_WS_MESSAGE_BYTES
    client.sendall(ws.text_frame(text, mask=True))
    assert _server_reader(server).read_message().data == text


def test_unmasked_server_frames_read_by_a_client(pair):
    server, client = pair
    reader = ws.FrameReader(client, max_message=1 << 20, require_mask=False)
    server.sendall(ws.text_frame("x" * 70000))
    assert reader.read_message().data == "x" * 70000
    server.sendall(ws.text_frame("x", mask=True))
    with pytest.raises(ws.ProtocolError) as caught:
        reader.read_message()
    assert caught.value.code == events.CLOSE_PROTOCOL_ERROR


def test_fragments_with_a_ping_between(pair):
    client, server = pair
    reader = _server_reader(server)
    # "é" split across the two fragments: UTF-8 is checked on the whole message.
    data = "aé".encode()
    client.sendall(ws.encode_frame(ws.OP_TEXT, data[:2], fin=False, mask=True))
    client.sendall(ws.encode_frame(ws.OP_PING, b"hi", mask=True))
    client.sendall(ws.encode_frame(ws.OP_CONTINUATION, data[2:], mask=True))
    assert reader.read_message() == ws.Message(ws.OP_PING, b"hi")
    assert reader.read_message() == ws.Message(ws.OP_TEXT, "aé")


def test_close_frames():
    assert ws.parse_close(b"") == (1005, "")
    assert ws.parse_close(ws.close_payload(4001, "revoked")) == (4001, "revoked")
    for bad, code in (
        (b"\x03", events.CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 1005), events.CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 999), events.CLOSE_PROTOCOL_ERROR),
        (struct.pack("!H", 1000) + b"\xff", events.CLOSE_INVALID_DATA),
    ):
        with pytest.raises(ws.ProtocolError) as caught:
            ws.parse_close(bad)
        assert caught.value.code == code
    assert len(ws.close_payload(1000, "x" * 500)) == ws.MAX_CONTROL_PAYLOAD


HOSTILE = [
    ("unmasked client frame", ws.encode_frame(ws.OP_TEXT, b"{}"), events.CLOSE_PROTOCOL_ERROR),
    (
        "reserved bit",
        bytes([0x80 | 0x40 | ws.OP_TEXT]) + ws.encode_frame(ws.OP_TEXT, b"{}", mask=True)[1:],
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "unknown opcode",
        bytes([0x80 | 0x3]) + ws.encode_frame(ws.OP_TEXT, b"{}", mask=True)[1:],
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "fragmented ping",
        ws.encode_frame(ws.OP_PING, b"", fin=False, mask=True),
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "long ping",
        ws.encode_frame(ws.OP_PING, b"x" * 126, mask=True),
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "continuation of nothing",
        ws.encode_frame(ws.OP_CONTINUATION, b"x", mask=True),
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "new message inside a fragmented one",
        ws.encode_frame(ws.OP_TEXT, b"x", fin=False, mask=True)
        + ws.encode_frame(ws.OP_TEXT, b"y", mask=True),
        events.CLOSE_PROTOCOL_ERROR,
    ),
    (
        "invalid UTF-8",
        ws.encode_frame(ws.OP_TEXT, b"\xc3\x28", mask=True),
        events.CLOSE_INVALID_DATA,
    ),
    (
        # Announced as 2**63: refused from the header, nothing read.
        "length over 2**63",
        bytes([0x80 | ws.OP_TEXT, 0x80 | 127]) + struct.pack("!Q", 1 << 63),
        events.CLOSE_PROTOCOL_ERROR,
    ),
]


@pytest.mark.parametrize(("name", "raw", "code"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_frames(pair, name, raw, code):
    client, server = pair
    reader = _server_reader(server)
    client.sendall(raw)
    with pytest.raises(ws.ProtocolError) as caught:
        reader.read_message()
    assert caught.value.code == code, name


def test_oversized_frame_refused_from_its_header(pair):
    """A 1 GiB frame is refused when its header arrives: its payload is never read."""
    client, server = pair
    reader = _server_reader(server)
    client.sendall(bytes([0x80 | ws.OP_TEXT, 0x80 | 127]) + struct.pack("!Q", 1 << 30))
    with pytest.raises(ws.ProtocolError) as caught:
        reader.read_message()
    assert caught.value.code == events.CLOSE_TOO_BIG


def test_oversized_message_in_fragments(pair):
    client, server = pair
    reader = _server_reader(server)
    chunk = b"x" * (limits.MAX_WS_MESSAGE_BYTES // 2)
    sender = threading.Thread(
        target=lambda: client.sendall(
            ws.encode_frame(ws.OP_TEXT, chunk, fin=False, mask=True)
            + ws.encode_frame(ws.OP_CONTINUATION, chunk, fin=False, mask=True)
            + ws.encode_frame(ws.OP_CONTINUATION, b"y", mask=True)
        )
    )
    sender.start()
    with pytest.raises(ws.ProtocolError) as caught:
        reader.read_message()
    sender.join(5)
    assert caught.value.code == events.CLOSE_TOO_BIG


def test_a_timeout_mid_frame_loses_nothing(pair):
    """An idle client times the read out; the bytes of a frame received so
    far stay buffered and the next read completes it."""
    client, server = pair
    server.settimeout(0.05)
    reader = _server_reader(server)
    frame = ws.encode_frame(ws.OP_TEXT, b"x" * 300, mask=True)
    for cut in (1, 3, 6, len(frame) - 1):
        client.sendall(frame[:cut])
        with pytest.raises(TimeoutError):
            reader.read_message()
        client.sendall(frame[cut:])
        assert reader.read_message().data == "x" * 300


def test_end_of_stream_mid_frame(pair):
    client, server = pair
    reader = _server_reader(server)
    client.sendall(ws.encode_frame(ws.OP_TEXT, b"hello", mask=True)[:4])
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ws.ConnectionClosed):
        reader.read_message()


def test_client_messages():
    assert ws.parse_client_message('{"type":"auth","token":"abc"}') == {
        "type": "auth",
        "token": "abc",
    }
    assert ws.parse_client_message('{"type":"subscribe","rooms":["config:1"],"after":3}') == {
        "type": "subscribe",
        "rooms": ["config:1"],
        "after": 3,
    }
    assert ws.parse_client_message('{"type":"subscribe"}')["after"] is None
    for text, code in (
        ("not json", events.CLOSE_INVALID_DATA),
        ("[1]", events.CLOSE_INVALID_DATA),
        ('{"type":"hello"}', events.CLOSE_UNSUPPORTED),
        ('{"type":"auth"}', events.CLOSE_INVALID_DATA),
        ('{"type":"subscribe","rooms":"config:1"}', events.CLOSE_INVALID_DATA),
        ('{"type":"subscribe","after":-1}', events.CLOSE_INVALID_DATA),
        ('{"type":"subscribe","after":true}', events.CLOSE_INVALID_DATA),
        ('{"type":"subscribe","after":"3"}', events.CLOSE_INVALID_DATA),
    ):
        with pytest.raises(ws.ProtocolError) as caught:
            ws.parse_client_message(text)
        assert caught.value.code == code, text
