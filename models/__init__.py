from . import pos_api_device
from . import pos_api_printer
from . import pos_config
from . import pos_config_menu
from . import pos_order_state_history
from . import pos_order
from . import pos_order_api
