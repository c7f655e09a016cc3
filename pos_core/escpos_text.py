"""Reading ESC/POS bytes back as text: what a printer would print, line by
line, with the style each line started in. For the test printers of the
demo restaurant and the tests, which check what a printer received.

It knows the commands python-escpos emits for :mod:`.kitchen_ticket` and
refuses any other, so that a stream it cannot read is an error, not a
silently wrong text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ESC, GS = 0x1B, 0x1D
# ESC <command> takes this many argument bytes.
_ESC_ARGS = {
    ord("@"): 0,  # initialize
    ord("!"): 1,  # print mode
    ord("E"): 1,  # bold
    ord("a"): 1,  # alignment
    ord("t"): 1,  # code page
    ord("{"): 1,  # upside down
    ord("-"): 1,  # underline
    ord("M"): 1,  # font
    ord("d"): 1,  # feed n lines
    ord("G"): 1,  # double strike
}
_GS_ARGS = {ord("!"): 1, ord("b"): 1, ord("B"): 1}
# ESC t n -> Python codec (the code pages of python-escpos' default profile
# that tickets use).
_CODE_PAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}


class EscposParseError(ValueError):
    pass


@dataclass
class Line:
    text: str
    bold: bool = False
    large: bool = False
    centred: bool = False


@dataclass
class Printout:
    """One ticket as printed: its lines, and whether the paper was cut."""

    lines: list[Line] = field(default_factory=list)
    cut: bool = False

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def parse(data: bytes) -> list[Printout]:
    """The tickets in ``data``: a cut ends one."""
    printouts = [Printout()]
    state = {"bold": False, "large": False, "centred": False, "codec": "cp437"}
    pending = bytearray()
    line_style = None
    i = 0

    def flush():
        nonlocal line_style
        style = line_style or dict(state)
        printouts[-1].lines.append(
            Line(pending.decode(style["codec"]), style["bold"], style["large"], style["centred"])
        )
        pending.clear()
        line_style = None

    while i < len(data):
        byte = data[i]
        if byte in (ESC, GS):
            if i + 1 >= len(data):
                raise EscposParseError(f"Truncated command at byte {i}")
            command = data[i + 1]
            if byte == GS and command == ord("V"):  # cut: GS V m [n]
                mode = data[i + 2] if i + 2 < len(data) else None
                if mode is None:
                    raise EscposParseError(f"Truncated cut at byte {i}")
                i += 4 if mode in (65, 66) else 3
                if pending:
                    flush()
                printouts[-1].cut = True
                printouts.append(Printout())
                continue
            table = _ESC_ARGS if byte == ESC else _GS_ARGS
            if command not in table:
                raise EscposParseError(f"Unknown command {bytes(data[i : i + 2])!r} at byte {i}")
            args = data[i + 2 : i + 2 + table[command]]
            if len(args) < table[command]:
                raise EscposParseError(f"Truncated command at byte {i}")
            _apply(state, byte, command, args)
            i += 2 + table[command]
            continue
        if byte == 0x0A:
            flush()
        elif byte >= 0x20:
            if not pending:
                line_style = dict(state)
            pending.append(byte)
        else:
            raise EscposParseError(f"Unexpected control byte {byte:#04x} at byte {i}")
        i += 1
    if pending:
        flush()
    if not printouts[-1].lines and not printouts[-1].cut:
        printouts.pop()
    return printouts


def _apply(state, prefix, command, args):
    if prefix == ESC and command == ord("@"):
        state.update(bold=False, large=False, centred=False, codec="cp437")
    elif prefix == ESC and command == ord("E"):
        state["bold"] = bool(args[0] & 1)
    elif prefix == ESC and command == ord("a"):
        state["centred"] = args[0] == 1
    elif prefix == ESC and command == ord("t"):
        if args[0] not in _CODE_PAGES:
            raise EscposParseError(f"Unknown code page {args[0]}")
        state["codec"] = _CODE_PAGES[args[0]]
    elif prefix == ESC and command == ord("!"):
        state["large"] = bool(args[0] & 0x30)
        state["bold"] = bool(args[0] & 0x08)
    elif prefix == GS and command == ord("!"):
        state["large"] = args[0] != 0
