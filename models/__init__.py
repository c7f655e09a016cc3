from . import (
    pos_api_authorization,
    pos_api_device,
    pos_api_idempotency,
    pos_api_printer,
    pos_config,
    pos_config_menu,
    pos_order,
    pos_order_api,
    pos_order_payment_api,
    pos_order_replay,
    pos_order_state_history,
    pos_payment_audit,
)
