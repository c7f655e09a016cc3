from odoo import http
from odoo.http import request


class PosApiController(http.Controller):
    @http.route("/pos_api/v1/health", type="http", auth="none", methods=["GET"], csrf=False)
    def health(self):
        """Liveness probe for devices and load balancers: no database access."""
        return request.make_json_response({"status": "ok", "api": "v1"})
