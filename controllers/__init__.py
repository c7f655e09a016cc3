from . import events, kds, main
