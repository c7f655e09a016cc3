from . import controllers, models
from .models.pos_payment_audit import uninstall_hook
