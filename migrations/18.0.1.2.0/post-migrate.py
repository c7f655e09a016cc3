"""The print job's retry pattern is data with noupdate (an operator may
change it): a database still on the old default (then every 60 s) takes the
new one (then every 20 s, so a ticket prints within 30 s of its printer's
return); one an operator changed keeps it."""

from odoo import SUPERUSER_ID, api

OLD_DEFAULT = {1: (1, 3), 2: (3, 7), 3: (7, 13), 4: (15, 25), 5: (22, 38), 6: (45, 75)}


def migrate(cr, version):
    from odoo.addons.point_of_sale_api.pos_core import print_retry

    env = api.Environment(cr, SUPERUSER_ID, {})
    function = env.ref("point_of_sale_api.job_function_print_ticket", raise_if_not_found=False)
    if not function:
        return
    current = {int(count): tuple(delay) for count, delay in (function.retry_pattern or {}).items()}
    if current == OLD_DEFAULT:
        function.retry_pattern = print_retry.retry_pattern()
