"""The device event channel over HTTP: long-poll and the WebSocket upgrade.
The waiting and the fan-out live in models/pos_event_channel.py."""

from odoo.http import Response, request

from ..models import pos_event_channel as channel
from ..pos_core import limits, tokens
from ..pos_core import schemas as s
from ..pos_core import websocket as ws
from ..pos_core.exceptions import InvalidInput, PosApiError, TooManyRequests
from .main import PosApiController, endpoint

JSON = "application/json"


class PosApiEventsController(PosApiController):
    def _authenticate(self, route):
        """A WebSocket may authenticate with its first message instead
        (browsers cannot set headers on one): no header, no device yet."""
        if route.websocket and not request.httprequest.headers.get("Authorization"):
            return None
        return super()._authenticate(route)

    @staticmethod
    def _socket():
        """The request's TCP socket (gevent's WSGI server puts it in the
        environ, as Odoo's bus uses it)."""
        return request.httprequest._HTTPRequest__environ["socket"]

    @staticmethod
    def _claims(device):
        """The claims of the request's (already verified) access token."""
        token = request.httprequest.headers["Authorization"].partition(" ")[2].strip()
        return tokens.decode(device._jwt_secret(), token, tokens.ACCESS, device._jwt_audience())

    @endpoint("events")
    def events(self, device, body):
        try:
            query = s.EventsQuery.model_validate(request.httprequest.args.to_dict())
        except ValueError as exc:
            raise InvalidInput(
                "after is a seq, rooms comma-separated, timeout 0-"
                f"{limits.LONGPOLL_MAX_TIMEOUT} seconds.",
                code="invalid_query",
            ) from exc
        rooms = device._api_event_rooms(query.room_list)
        result = channel.long_poll(request.env, device, query.after, rooms, query.timeout)
        if isinstance(result, bytes):
            return Response(result, status=200, content_type=JSON)
        hold = channel.LongPollHold(
            request.env.cr.dbname,
            device.id,
            self._claims(device),
            result,
            rooms=rooms,
            remote_addr=request.httprequest.remote_addr,
        )
        if not hold.acquire():
            raise TooManyRequests(
                f"A device holds at most {limits.MAX_CONNECTIONS_PER_DEVICE} connections here.",
                code="too_many_connections",
                retry_after=1,
                details={"limit": limits.MAX_CONNECTIONS_PER_DEVICE},
            )
        channel.no_delay(self._socket())
        # The body waits once Odoo has committed and closed the request's
        # cursor (Request._transactioning returns before the WSGI server
        # iterates the body): a waiting long-poll holds no cursor.
        response = Response(hold.body(query.timeout), status=200, content_type=JSON)
        response.call_on_close(hold.release)
        return response

    @endpoint("events_ws")
    def events_ws(self, device, body):
        if not channel.can_hold_connections():
            raise InvalidInput(
                "WebSockets are served on the gevent port (--gevent-port).",
                code="use_gevent_port",
            )
        try:
            accept = ws.check_handshake(request.httprequest.headers)
        except ws.HandshakeError as exc:
            error = PosApiError(exc.message, code="bad_handshake")
            error.status = exc.status
            raise error from exc
        sock = self._socket()
        claims = self._claims(device) if device is not None else None
        session = channel.DeviceSocket(
            sock,
            request.env.cr.dbname,
            request.httprequest.remote_addr,
            device_id=device.id if device is not None else None,
            claims=claims,
        )
        response = Response(
            status=101,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Accept": accept,
            },
        )
        # As Odoo's bus does: the session runs once the 101 is sent.
        response.call_on_close(session.serve)
        return response
