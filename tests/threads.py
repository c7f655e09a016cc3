"""Environments for test threads that open cursors of their own.

Odoo's own test runner (``odoo-bin --test-enable``) runs the tests while it
holds ``Registry._lock``; ``api.Environment(cr, ...)`` on a cursor without a
transaction looks the registry up through that lock, so a thread doing it
would wait for the end of the whole run. Giving the cursor its transaction
from the registry object the test already holds needs no lock.
"""

from odoo import api


def thread_env(registry, cr, uid, context=None):
    """An environment on ``cr`` (a cursor of ``registry``), usable from any thread."""
    if cr.transaction is None:
        cr.transaction = api.Transaction(registry)
    return api.Environment(cr, uid, context or {})
