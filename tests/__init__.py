from . import test_api
from . import test_billing_odoo
from . import test_concurrency
from . import test_demo_data
from . import test_foundation
from . import test_lifecycle
