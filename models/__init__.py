from . import (
    pos_api_authorization,
    pos_api_cache_version,
    pos_api_device,
    pos_api_device_events,
    pos_api_idempotency,
    pos_api_printer,
    pos_config,
    pos_config_menu,
    pos_event_channel,
    pos_kitchen_ticket,
    pos_menu_document,
    pos_menu_warming,
    pos_order,
    pos_order_api,
    pos_order_payment_api,
    pos_order_replay,
    pos_order_state_history,
    pos_payment_audit,
    pos_sync_events,
    pos_sync_log,
    pos_websocket_connection,
    product_availability,
    product_search,
)

# isort: split
# After pos_kitchen_ticket: it extends that file's model.
from . import pos_kitchen_display
