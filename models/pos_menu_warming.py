"""Warming the menu cache: every 15 minutes from a cron, and once per process
and database in the background, at the process's first API request (a
prefork worker, or a threaded server). The request that starts it does not
wait for it."""

import logging
import os
import threading
import time

import odoo
from odoo import SUPERUSER_ID, api, models
from odoo.tools import config

from ..pos_core import limits

_logger = logging.getLogger(__name__)

_STARTED = set()  # (pid, dbname) whose warming has started
_STARTED_LOCK = threading.Lock()


def _warm(dbname, budget):
    """Warm the menus of ``dbname`` on a cursor of its own (in a thread that
    is not a request's), once its registry is loaded."""
    threading.current_thread().dbname = dbname
    try:
        registry = odoo.modules.registry.Registry.registries.get(dbname)
        if registry is None or not registry.ready:
            return
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            done, remaining = env["pos.config"]._cron_warm_menu_cache(budget=budget)
        _logger.info("Menu cache warmed at worker start: %s menus, %s left", done, remaining)
    except Exception:
        _logger.warning("Menu cache warming at worker start failed", exc_info=True)


def start_menu_warming(dbname, budget=None):
    """Warm ``dbname``'s menus in a background thread; returns the thread.
    In a prefork worker its CPU time counts against the worker's
    ``limit_time_cpu`` until the next request: the budget stays well
    under it."""
    if budget is None:
        budget = limits.CACHE_WARM_BUDGET
        if config["workers"] and config["limit_time_cpu"]:
            budget = min(budget, config["limit_time_cpu"] / 4)
    thread = threading.Thread(
        target=_warm,
        args=(dbname, budget),
        name=f"pos_api.menu_warming.{dbname}",
        daemon=True,
    )
    thread.start()
    return thread


def warm_once(registry):
    """Start warming the menus of ``registry``'s database unless this
    process did already, or does not serve requests
    (:func:`warms_at_start`). Cheap after the first call."""
    dbname = registry.db_name
    key = (os.getpid(), dbname)
    if key in _STARTED or not warms_at_start(registry):
        return None
    with _STARTED_LOCK:
        if key in _STARTED:
            return None
        _STARTED.add(key)
    return start_menu_warming(dbname)


def warms_at_start(registry):
    """Whether this process warms at its first API request: not in a test
    run (odoo-bin's, or pytest-odoo's, whose registry is then in test mode),
    a one-shot command (install, upgrade), nor the gevent process (it
    serves long polling and WebSockets, not menus)."""
    return not (
        config["test_enable"]
        or config["stop_after_init"]
        or odoo.evented
        or registry.in_test_mode()
    )


class PosConfig(models.Model):
    _inherit = "pos.config"

    @api.model
    def _cron_warm_menu_cache(self, budget=None):
        """Build the menus of the active points of sale (those with an open
        session first) into the tiered cache, in the languages of their
        devices' users and each in its company, plain and gzip, until done
        or ``budget`` seconds are spent. Progress goes to the cron's record.
        Returns (menus warmed, menus left)."""
        budget = limits.CACHE_WARM_BUDGET if budget is None else budget
        deadline = time.monotonic() + budget
        configs = self.search([]).sorted(lambda config: (not config.current_session_id, config.id))
        todo = []
        for pos_config in configs:
            devices = self.env["pos.api.device"].sudo().search([("config_id", "=", pos_config.id)])
            fallback = self.env.lang or "en_US"
            langs = {lang or fallback for lang in devices.user_id.mapped("lang")} or {fallback}
            todo.extend((pos_config, lang) for lang in sorted(langs))
        done = 0
        for pos_config, lang in todo:
            if time.monotonic() >= deadline:
                break
            in_lang = pos_config.with_company(pos_config.company_id).with_context(lang=lang)
            etag = in_lang._api_menu_etag()
            if etag is not None:
                in_lang._api_menu_bytes(etag)
                in_lang._api_menu_bytes(etag, compressed=True)
            done += 1
            self.env.invalidate_all()  # one menu's records at a time in memory
        self.env["ir.cron"]._notify_progress(done=done, remaining=len(todo) - done)
        return done, len(todo) - done
