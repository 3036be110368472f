"""Making untrusted text (titles, file names, notes, places) safe for each kind of output.

Text in geoapp comes from analysts, imported bundles and file names, so it may hold anything:
control characters, characters XML forbids, lone surrogates (a file name that was not UTF-8),
spreadsheet formulas, Unicode direction overrides that make ``photo\\u202egpj.exe`` display
as "photoexe.jpg". Each writer passes its text through the one function for its output:

- :func:`xml_text`      XML, KML, HTML and SVG: characters XML 1.0 forbids become U+FFFD.
- :func:`csv_cell`      CSV: a cell a spreadsheet would run as a formula gets a leading ``'``.
- :func:`terminal_text` the terminal: control characters shown as ``\\x1b`` escapes, never run.
- :func:`display_text`  reports and the UI: XML-safe, and direction controls shown as ``[U+202E]``.
- :func:`message_text`  error messages shown as HTML by Gradio and read as text by API clients.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# XML 1.0 allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Characters that reorder the text around them (bidi embeddings, overrides, isolates, marks).
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# C0 and C1 controls and DEL (terminal escapes, cursor moves, title changes), lone surrogates.
_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DEL_C1 = re.compile("[\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_RAW = re.compile("[\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids (most C0 controls, U+FFFE/U+FFFF, lone
    surrogates) replaced by U+FFFD, so the document stays well-formed. Escaping is the writer's job."""
    return _XML_FORBIDDEN.sub(REPLACEMENT, text)


def reveal_bidi(text: str) -> str:
    """Direction controls made visible (``photo[U+202E]gpj.exe``), so a name reads as it is stored."""
    return _BIDI.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def display_text(value: Any) -> str:
    """Untrusted text for a report or the UI: XML-safe, DEL and C1 controls (HTML parse errors) replaced,
    direction controls visible. Still to be escaped by the writer."""
    return reveal_bidi(_DEL_C1.sub(REPLACEMENT, xml_text("" if value is None else str(value))))


def terminal_text(value: Any) -> str:
    """Untrusted text for the terminal: control characters as visible escapes (``\\x1b``), direction
    controls as ``[U+202E]``; tabs and newlines too, so one record stays on one line."""
    text = reveal_bidi("" if value is None else str(value))
    return _TERMINAL.sub(_terminal_escape, text)


def _terminal_escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (surrogateescape)
        code -= 0xDC00
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def unicode_text(text: str) -> str:
    """``text`` that encodes as UTF-8: lone surrogates (from file names that were not UTF-8) become U+FFFD."""
    return _SURROGATE.sub(REPLACEMENT, text)


def terminal_json(text: str) -> str:
    """JSON text for the terminal: C1 controls, lone surrogates and direction controls written as
    ``\\uXXXX`` escapes (json leaves them raw with ``ensure_ascii=False``); the data is unchanged."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def message_text(value: Any) -> str:
    """Text for a message that one client renders as HTML (Gradio's error toast) and another reads
    as plain text (the API): ``& < >`` become look-alikes (＆ ‹ ›), so there is no markup to run
    and no entity to decode; quotes stay as they are."""
    text = display_text(value)
    return text.replace("&", "\uff06").replace("<", "\u2039").replace(">", "\u203a")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (OWASP's guard: a leading quote).

    Numbers stay numbers (a negative coordinate is data); text starting with ``= + - @``, a tab
    or a line break gets a ``'`` in front; lone surrogates become U+FFFD so the file encodes."""
    if not isinstance(value, str):
        return value
    value = unicode_text(value)
    return "'" + value if value.startswith(_FORMULA_START) else value
