import base64
import io
import json

import qrcode

from odoo import api, fields, models


class PosApiDeviceTokenWizard(models.TransientModel):
    """Shows a device's new token pair once, with a QR code for pairing.

    Opened unsaved by ``pos.api.device.action_issue_tokens`` with the pair in
    its defaults, and closed without saving: the tokens are never stored.
    """

    _name = "pos.api.device.token.wizard"
    _description = "POS API Device Tokens"

    device_id = fields.Many2one("pos.api.device", readonly=True)
    api_url = fields.Char(string="API URL", compute="_compute_api_url")
    access_token = fields.Char(readonly=True)
    refresh_token = fields.Char(readonly=True)
    refresh_expires_at = fields.Datetime(string="Refresh Token Expires", readonly=True)
    qr_code = fields.Binary(string="QR Code", compute="_compute_qr_code", attachment=False)

    @api.depends("device_id")
    def _compute_api_url(self):
        base_url = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "")
        for wizard in self:
            wizard.api_url = f"{base_url.rstrip('/')}/pos_api/v1"

    @api.depends("access_token", "refresh_token")
    def _compute_qr_code(self):
        for wizard in self:
            if not wizard.access_token or not wizard.refresh_token:
                wizard.qr_code = False
                continue
            payload = json.dumps(
                {
                    "api": wizard.api_url,
                    "device_id": wizard.device_id.id,
                    "access_token": wizard.access_token,
                    "refresh_token": wizard.refresh_token,
                },
                separators=(",", ":"),
            )
            code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, box_size=4)
            code.add_data(payload)
            code.make(fit=True)
            png = io.BytesIO()
            code.make_image().save(png)
            wizard.qr_code = base64.b64encode(png.getvalue())
