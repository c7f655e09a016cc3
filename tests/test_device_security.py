"""Device identity and tokens: the user behind a device is checked on every
request, tokens name their database, moving a device revokes its tokens, a
refresh retried within the grace window gets the same pair, the signing key
lives outside the database, and a manager issues tokens from the backend."""

import base64
import hashlib
import hmac
import os
import stat
import threading
import time
from unittest.mock import patch

import jwt

from odoo import SUPERUSER_ID, Command, api
from odoo.exceptions import AccessError, ValidationError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tests import Form, TransactionCase, tagged
from odoo.tools import config as odoo_config
from odoo.tools import mute_logger

from ..models.pos_api_device import api_settings, jwt_key_path
from ..pos_core import tokens
from .common import DEMO_CONFIG_XMLID, PosApiFactories, PosApiHttpCommon
from .threads import thread_env

API_USER_GROUP = "point_of_sale_api.group_pos_api_user"
API_MANAGER_GROUP = "point_of_sale_api.group_pos_api_manager"


@tagged("post_install", "-at_install")
class TestDeviceSecurity(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wendy = cls._create_user("wendy", API_USER_GROUP)

    @classmethod
    def _create_user(cls, login, *groups):
        return (
            cls.env["res.users"]
            .sudo()
            .create(
                {
                    "name": login.title(),
                    "login": login,
                    "groups_id": [
                        Command.set([cls.env.ref(g).id for g in ("base.group_user", *groups)])
                    ],
                }
            )
        )

    def _device_for(self, user, role="waiter"):
        return (
            self.env["pos.api.device"]
            .sudo()
            .create(
                {
                    "name": f"{user.login}'s tablet",
                    "config_id": self.config.id,
                    "role": role,
                    "user_id": user.id,
                }
            )
        )

    def _get(self, token):
        self.env.flush_all()
        status, body = self._call("GET", "/orders", token=token)
        return status, body.get("error", {}).get("code")

    def _refresh(self, refresh_token):
        self.env.flush_all()
        return self._call("POST", "/auth/refresh", {"refresh_token": refresh_token})

    # ------------------------------------------------------------------
    # 1. the user behind the device
    # ------------------------------------------------------------------
    def test_archived_user_or_lost_group_stops_the_device_at_once(self):
        device = self._device_for(self.wendy)
        pair = device._issue_tokens()
        self.assertEqual(self._get(pair.access_token), (200, None))
        api_user = self.env.ref(API_USER_GROUP)
        self.wendy.sudo().write({"groups_id": [Command.unlink(api_user.id)]})
        self.assertEqual(self._get(pair.access_token), (403, "device_user_group_missing"))
        status, error = self._refresh(pair.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (403, "device_user_group_missing"))
        self.wendy.sudo().write({"groups_id": [Command.link(api_user.id)]})
        self.assertEqual(self._get(pair.access_token), (200, None))
        self.wendy.sudo().active = False
        self.assertEqual(self._get(pair.access_token), (401, "device_user_inactive"))
        status, error = self._refresh(pair.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "device_user_inactive"))
        # Demoted to a portal user: no longer internal.
        self.wendy.sudo().write(
            {"active": True, "groups_id": [Command.set([self.env.ref("base.group_portal").id])]}
        )
        self.assertEqual(self._get(pair.access_token), (401, "device_user_inactive"))

    def test_a_device_never_acts_as_the_superuser(self):
        with self.assertRaises(ValidationError):
            self.env["pos.api.device"].sudo().create(
                {
                    "name": "Root tablet",
                    "config_id": self.config.id,
                    "role": "manager",
                    "user_id": SUPERUSER_ID,
                }
            )
        device = self._device_for(self.wendy)
        with self.assertRaises(ValidationError):
            device.user_id = SUPERUSER_ID
        # Put there behind the ORM's back: refused on the next request anyway.
        pair = device._issue_tokens()
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE pos_api_device SET user_id = %s WHERE id = %s", (SUPERUSER_ID, device.id)
        )
        device.invalidate_recordset()
        self.assertEqual(self._get(pair.access_token), (401, "device_user_inactive"))

    def test_the_superuser_is_in_no_group_of_the_addon(self):
        groups = self.env.ref(API_USER_GROUP) | self.env.ref(API_MANAGER_GROUP)
        self.env.cr.execute(
            "SELECT gid FROM res_groups_users_rel WHERE uid = %s AND gid IN %s",
            (SUPERUSER_ID, tuple(groups.ids)),
        )
        self.assertEqual(self.env.cr.fetchall(), [])
        devices = self.env["pos.api.device"].sudo().with_context(active_test=False).search([])
        self.assertNotIn(SUPERUSER_ID, devices.user_id.ids)

    # ------------------------------------------------------------------
    # 2. tokens name their database
    # ------------------------------------------------------------------
    def test_a_token_of_another_database_is_refused(self):
        device = self.waiter
        secret = device._jwt_secret()
        claims = dict(
            device_id=device.id,
            config_id=device.config_id.id,
            company_id=device.company_id.id,
            role=device.role,
            version=device.token_version,
        )
        here = tokens.issue_pair(secret, audience=device._jwt_audience(), **claims)
        self.assertEqual(self._get(here.access_token), (200, None))
        other = tokens.issue_pair(secret, audience="uuid-of-another-database", **claims)
        self.assertEqual(self._get(other.access_token), (401, "wrong_audience"))
        device.sudo().refresh_jti = other.refresh_jti
        status, error = self._refresh(other.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "wrong_audience"))
        # A token without any audience, as this addon signed them before.
        payload = jwt.decode(here.access_token, options={"verify_signature": False})
        del payload["aud"]
        unnamed = jwt.encode(payload, secret, algorithm=tokens.ALGORITHM)
        self.assertEqual(self._get(unnamed), (401, "invalid_token"))

    # ------------------------------------------------------------------
    # 3. moving or archiving a device revokes its tokens
    # ------------------------------------------------------------------
    def test_refresh_checks_the_claims_against_the_device(self):
        device = self._device_for(self.wendy)
        forged = tokens.issue_pair(
            device._jwt_secret(),
            device_id=device.id,
            config_id=device.config_id.id,
            company_id=device.company_id.id,
            role="manager",
            version=device.token_version,
            audience=device._jwt_audience(),
        )
        device.sudo().refresh_jti = forged.refresh_jti
        status, error = self._refresh(forged.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))
        for claim in ("config_id", "company_id"):
            forged = tokens.issue_pair(
                device._jwt_secret(),
                **{
                    "device_id": device.id,
                    "config_id": device.config_id.id,
                    "company_id": device.company_id.id,
                    "role": device.role,
                    "version": device.token_version,
                    claim: 987654,
                },
                audience=device._jwt_audience(),
            )
            device.sudo().refresh_jti = forged.refresh_jti
            status, error = self._refresh(forged.refresh_token)
            self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"), claim)

    def test_moving_or_archiving_a_device_revokes_its_tokens_for_good(self):
        other_config = (
            self.env["pos.config"]
            .sudo()
            .create({"name": "Second Bar", "payment_method_ids": [Command.set([])]})
        )
        changes = [
            ("role", {"role": "cashier"}),
            ("point of sale", {"config_id": other_config.id}),
            ("user", {"user_id": self.env.ref("base.user_admin").id}),
        ]
        for label, vals in changes:
            with self.subTest(label):
                device = self._device_for(
                    self.wendy if label == "user" else self.env.ref("base.user_admin")
                )
                pair = device._issue_tokens()
                self.assertEqual(self._get(pair.access_token), (200, None))
                device.write(vals)
                self.assertEqual(self._get(pair.access_token), (401, "token_revoked"))
                status, error = self._refresh(pair.refresh_token)
                self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))
                # The device's new pair works.
                self.assertEqual(self._get(device._issue_tokens().access_token), (200, None))
        device = self._device_for(self.wendy)
        pair = device._issue_tokens()
        version = device.token_version
        device.write({"name": "Renamed tablet"})  # not a move: the tokens stay
        self.assertEqual(self._get(pair.access_token), (200, None))
        device.active = False
        device.active = True
        self.assertGreater(device.token_version, version)
        self.assertEqual(self._get(pair.access_token), (401, "token_revoked"))
        status, error = self._refresh(pair.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))

    # ------------------------------------------------------------------
    # 4. a refresh retried within the grace window
    # ------------------------------------------------------------------
    def test_a_refresh_retried_within_the_grace_window_gets_the_same_pair(self):
        device = self._device_for(self.wendy)
        pair = device._issue_tokens()
        status, first = self._refresh(pair.refresh_token)
        self.assertEqual(status, 200, first)
        status, again = self._refresh(pair.refresh_token)  # the response was lost
        self.assertEqual(status, 200, again)
        self.assertEqual(again, first)
        self.assertEqual(self._get(first["access_token"]), (200, None))
        # The new refresh token rotates normally; the first one is now two
        # rotations old and revokes the device.
        status, second = self._refresh(first["refresh_token"])
        self.assertEqual(status, 200, second)
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        status, error = self._refresh(pair.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "refresh_reused"))
        self.assertEqual(self._get(second["access_token"]), (401, "token_revoked"))

    def test_a_refresh_reused_after_the_grace_window_revokes_the_device(self):
        device = self._device_for(self.wendy)
        pair = device._issue_tokens()
        status, rotated = self._refresh(pair.refresh_token)
        self.assertEqual(status, 200, rotated)
        grace = api_settings().refresh_grace_seconds
        device.sudo().tokens_issued_at -= grace + 1  # the rotation was grace + 1 s ago
        status, error = self._refresh(pair.refresh_token)
        self.assertEqual((status, error["error"]["code"]), (401, "refresh_reused"))
        self.assertEqual(self._get(rotated["access_token"]), (401, "token_revoked"))
        status, error = self._refresh(rotated["refresh_token"])
        self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))

    def test_grace_window_edges_at_the_model(self):
        device = self._device_for(self.wendy)
        devices = self.env["pos.api.device"].sudo()
        grace = api_settings().refresh_grace_seconds
        pair = device._issue_tokens()
        rotated_at = int(time.time())
        first = devices._api_refresh(pair.refresh_token, now=rotated_at)
        at_edge = devices._api_refresh(pair.refresh_token, now=rotated_at + grace)
        self.assertEqual(at_edge, first)
        with self.assertRaises(tokens.RefreshReused):
            devices._api_refresh(pair.refresh_token, now=rotated_at + grace + 1)

    # ------------------------------------------------------------------
    # 5. the signing key
    # ------------------------------------------------------------------
    def test_the_signing_key_lives_outside_the_database(self):
        if api_settings().jwt_secret:
            self.skipTest("a jwt_secret is configured")
        devices = self.env["pos.api.device"]
        key = devices._jwt_secret()
        path = jwt_key_path(self.env.cr.dbname)
        with open(path, encoding="ascii") as handle:
            self.assertEqual(handle.read().strip(), key)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertGreaterEqual(len(key), tokens.MIN_SECRET_LENGTH)
        params = self.env["ir.config_parameter"].sudo()
        db_secret = params.get_param("database.secret")
        derived = hmac.new(db_secret.encode(), b"point_of_sale_api/jwt", hashlib.sha256)
        self.assertNotEqual(key, derived.hexdigest())
        self.env.cr.execute("SELECT value FROM ir_config_parameter")
        self.assertFalse([value for (value,) in self.env.cr.fetchall() if key in (value or "")])
        params.set_param("database.secret", "something else entirely")
        self.assertEqual(devices._jwt_secret(), key)

    def test_a_configured_secret_is_used_and_must_be_long_enough(self):
        token = self._token(self.waiter)
        section = dict(odoo_config.misc.get("point_of_sale_api", {}))
        with patch.dict(
            odoo_config.misc, {"point_of_sale_api": {**section, "jwt_secret": "k" * 40}}
        ):
            self.assertEqual(self.env["pos.api.device"]._jwt_secret(), "k" * 40)
            with self.assertRaises(tokens.TokenError):  # signed with the other key
                self.env["pos.api.device"]._api_device_for(token, tokens.ACCESS)
        with patch.dict(
            odoo_config.misc, {"point_of_sale_api": {**section, "jwt_secret": "k" * 31}}
        ):
            with self.assertRaises(tokens.InsecureSecret):
                self.env["pos.api.device"]._api_device_for(token, tokens.ACCESS)
            with self.assertRaises(tokens.InsecureSecret):
                self.waiter._issue_tokens()

    # ------------------------------------------------------------------
    # 6. issuing tokens from the backend
    # ------------------------------------------------------------------
    def test_a_manager_issues_tokens_from_the_backend_once(self):
        manager = self._create_user("maria", API_MANAGER_GROUP)
        device = self._device_for(self.wendy)
        earlier = device._issue_tokens()
        action = device.with_user(manager).action_issue_tokens()
        self.assertEqual(action["res_model"], "pos.api.device.token.wizard")
        self.assertEqual(action["target"], "new")
        self.assertNotIn("res_id", action)  # an unsaved wizard: the pair is not stored
        wizard = Form(
            self.env["pos.api.device.token.wizard"]
            .with_user(manager)
            .with_context(**action["context"])
        )
        self.assertEqual(wizard.device_id, device)
        self.assertTrue(wizard.api_url.endswith("/pos_api/v1"))
        png = base64.b64decode(wizard.qr_code)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(self._get(wizard.access_token), (200, None))
        status, rotated = self._refresh(wizard.refresh_token)
        self.assertEqual(status, 200, rotated)
        # Issuing revoked the previous pair.
        self.assertEqual(self._get(earlier.access_token), (401, "token_revoked"))
        self.assertEqual(self.env["pos.api.device.token.wizard"].sudo().search_count([]), 0)

    def test_only_managers_issue_tokens(self):
        device = self._device_for(self.wendy)
        pair = device._issue_tokens()
        for login, groups in (
            ("paul", ("point_of_sale.group_pos_user",)),
            ("petra", ("point_of_sale.group_pos_manager",)),
            ("walter", (API_USER_GROUP,)),
        ):
            user = self._create_user(login, *groups)
            with self.subTest(login), self.assertRaises(AccessError):
                device.with_user(user).action_issue_tokens()
        self.assertEqual(self._get(pair.access_token), (200, None))


@tagged("post_install", "-at_install")
class TestConcurrentRefresh(PosApiFactories, TransactionCase):
    """Concurrent uses of one refresh token in separate transactions, retried
    as Odoo retries a request after a serialization conflict: every one gets
    the same new pair and the device is not revoked."""

    K = 4

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.env.ref("base.user_admin").id, {})
            config = env.ref(DEMO_CONFIG_XMLID)
            device = self._create_device("waiter", config, name="Concurrent refresh")
            self.device_id = device.id
            self.refresh_token = device._issue_tokens().refresh_token
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})["pos.api.device"].browse(self.device_id).unlink()

    @staticmethod
    def _retrying(func, env, tries=5):
        """What Odoo does with a request that hit a serialization conflict
        (odoo.service.model.retrying): roll back, forget the cache, run it
        again. Not that function itself: it takes locks that Odoo's own test
        runner holds while it runs the tests."""
        for attempt in range(tries):
            try:
                return func()
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                if attempt == tries - 1:
                    raise
                env.cr.rollback()
                env.invalidate_all(flush=False)
                time.sleep(0.05 * (attempt + 1))

    def test_concurrent_refreshes_of_one_token_get_one_pair(self):
        barrier = threading.Barrier(self.K)
        results = [None] * self.K

        def run(index):
            try:
                with self.registry.cursor() as cr:
                    env = thread_env(self.registry, cr, SUPERUSER_ID)
                    barrier.wait(timeout=30)
                    results[index] = self._retrying(
                        lambda: env["pos.api.device"]._api_refresh(self.refresh_token), env
                    )
            except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(self.K)]
        with mute_logger("odoo.sql_db"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        self.assertFalse([r for r in results if not isinstance(r, dict)], results)
        self.assertEqual(len({r["refresh_token"] for r in results}), 1, results)
        self.assertEqual(len({r["access_token"] for r in results}), 1, results)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            device = env["pos.api.device"].browse(self.device_id)
            self.assertEqual(device.token_version, 0)
            claims = tokens.decode(
                device._jwt_secret(),
                results[0]["refresh_token"],
                tokens.REFRESH,
                device._jwt_audience(),
            )
            self.assertEqual(device.refresh_jti, claims.jti)
