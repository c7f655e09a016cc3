from . import events, main
