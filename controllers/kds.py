"""The kitchen display's page, ``/pos_api/kds/`` (the stations to choose
from) and ``/pos_api/kds/<station_id>``: an OWL app (``static/src/kds/``)
that uses the device API as any kitchen display does. It opens with a
kitchen device's token pair, given once in the address's fragment
(``#access=...&refresh=...``, never sent to the server) and then kept by the
browser, or, for a logged-in user of the addon, with short access tokens
that the page asks for here (``POST /pos_api/kds/token``)."""

from odoo import http
from odoo.http import request

from ..pos_core import api_spec, limits
from ..pos_core.exceptions import InvalidInput, PosApiError


class PosApiKdsController(http.Controller):
    @http.route(
        ["/pos_api/kds", "/pos_api/kds/<int:station_id>"],
        type="http",
        auth="public",
        methods=["GET"],
        sitemap=False,
    )
    def kds_page(self, station_id=None, config_id=None, **_kwargs):
        try:
            if station_id is not None:
                limits.check_id("station_id", station_id)
            config_id = self._config_id(config_id)
        except PosApiError:
            return request.not_found()
        user = request.env.user
        info = {
            "api": api_spec.PREFIX,
            "station_id": station_id,
            "config_id": config_id,
            # A logged-in user gets tokens from the session; anyone else
            # brings a kitchen device's.
            "user_tokens": not user._is_public(),
        }
        return request.render(
            "point_of_sale_api.kds_index",
            {
                "session_info": {
                    **request.env["ir.http"].get_frontend_session_info(),
                    "pos_api_kds": info,
                },
            },
        )

    @http.route("/pos_api/kds/token", type="json", auth="user", methods=["POST"])
    def kds_token(self, config_id=None):
        """A short access token of the user's kitchen display device for the
        point of sale ``config_id`` (default: the first the user may open
        that has stations)."""
        try:
            return request.env["pos.api.device"]._api_kds_user_token(self._config_id(config_id))
        except PosApiError as exc:
            request.env.cr.rollback()
            return {"error": exc.to_dict()["error"], "status": exc.status}

    @staticmethod
    def _config_id(config_id):
        if config_id in (None, ""):
            return None
        try:
            config_id = int(config_id)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("config_id is a point of sale id.", code="invalid_query") from exc
        limits.check_id("config_id", config_id)
        return config_id
