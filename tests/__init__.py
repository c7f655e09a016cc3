from . import (
    test_api,
    test_audit_keyed,
    test_billing_odoo,
    test_concurrency,
    test_demo_data,
    test_foundation,
    test_idempotency_scope,
    test_lifecycle,
    test_payment_audit,
    test_payments,
    test_pos_ui_tour,
    test_worker_kill,
)
