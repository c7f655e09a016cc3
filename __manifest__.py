{
    "name": "Point of Sale API",
    "summary": "Restaurant backend for the Odoo POS: order lifecycle, exact billing, "
    "device JSON API, real-time events, kitchen printing and health crons",
    "version": "18.0.1.2.0",
    "category": "Sales/Point of Sale",
    "author": "point_of_sale_api developers",
    "website": "https://github.com/point-of-sale-api/point_of_sale_api",
    "license": "LGPL-3",
    "depends": ["point_of_sale", "pos_restaurant", "bus", "queue_job"],
    "external_dependencies": {
        "python": ["redis", "pyjwt", "python-escpos", "pydantic", "qrcode"],
    },
    "data": [
        "security/point_of_sale_api_security.xml",
        "security/ir.model.access.csv",
        "security/point_of_sale_api_rules.xml",
        "data/ir_cron.xml",
        "data/ir_cron_audit.xml",
        "data/ir_cron_websocket_connection.xml",
        "data/ir_cron_sync_log.xml",
        "data/ir_cron_cache.xml",
        "data/queue_job_print.xml",
        "views/pos_api_device_views.xml",
        "views/pos_config_views.xml",
        "views/pos_websocket_connection_views.xml",
        "views/pos_sync_log_views.xml",
        "views/product_template_views.xml",
        "views/kds_templates.xml",
    ],
    "demo": [
        "data/demo/restaurant_demo.xml",
        "data/demo/device_demo.xml",
    ],
    "assets": {
        "point_of_sale._assets_pos": [
            "point_of_sale_api/static/src/pos/**/*",
        ],
        # The kitchen display's page (/pos_api/kds/), as Odoo's customer
        # display is built.
        "point_of_sale_api.kds_assets": [
            ("include", "point_of_sale.base_app"),
            "point_of_sale_api/static/src/kds/**/*",
        ],
        "web.assets_tests": [
            "point_of_sale_api/static/tests/tours/**/*",
        ],
    },
    "uninstall_hook": "uninstall_hook",
    "installable": True,
    "application": False,
}
