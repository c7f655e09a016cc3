from . import controllers, models, wizard
from .models.pos_payment_audit import uninstall_hook
