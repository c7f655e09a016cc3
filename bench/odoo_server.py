"""Starts Odoo for the benchmark: what ``odoo-bin`` does, plus one workaround.

Run as ``python bench/odoo_server.py -c odoo.conf --workers 4 ...``, not as
``python -m odoo``: the prefork master spawns its gevent (websocket) process
as ``[sys.executable, sys.argv[0], "gevent", ...]``; with ``-m`` that
``argv[0]`` is ``odoo/__main__.py``, which cannot run as a script, and the
master respawns the failing process about once a second, an Odoo import each
time, taking CPU from the workers being measured.

The workaround: gevent 22.10 (Odoo 18's pin) calls its plugins through
``pkg_resources``, which checks gevent's requirements first; an old
``pkg_resources`` does not recognise the newer metadata of ``zope.interface``
(``zope_interface-8.x.dist-info``), so the gevent process dies at start-up and
is respawned in the same loop. When, and only when, that check fails, the
plugins are looked up through ``importlib.metadata`` instead, which loads the
same entry points without the requirement check.
"""

import os
import sys

os.environ["TZ"] = "UTC"  # as odoo-bin


def _gevent_plugins_without_requirement_check():
    try:
        import pkg_resources

        pkg_resources.require("gevent")
        return
    except ImportError:
        return
    except Exception:  # noqa: BLE001 - any resolution failure is the case handled here
        pass
    from importlib import metadata

    import gevent.events

    def iter_entry_points(group):
        return iter(metadata.entry_points(group=group))

    gevent.events.iter_entry_points = iter_entry_points


if len(sys.argv) > 1 and sys.argv[1] == "gevent":
    _gevent_plugins_without_requirement_check()

import odoo  # noqa: E402

odoo.cli.main()
