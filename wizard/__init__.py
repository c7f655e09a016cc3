from . import pos_api_device_token_wizard
