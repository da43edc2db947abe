"""Log redaction: a Function's secret values never reach stored output.

The run engine passes every output line, the return value and the error text
through ``Redactor.redact``; a source that delivers raw chunks (a value may
be split across two writes) uses ``StreamRedactor``. Every occurrence of a
secret value of 4 characters or more becomes ``****``; overlapping
occurrences of two values are masked as one run.

What counts as an occurrence of a value:
* the value itself;
* the value as JSON text shows it (escaped quotes, backslashes, control and
  non-ASCII characters; the return value is stored as JSON) and as ``repr``
  shows it (a traceback's ``KeyError: '...'``, a printed dict or list),
  also escaped twice (JSON inside JSON, a repr inside an exception's repr);
* each line (4 characters or more) of a value that spans several lines, so a
  multi-line value printed line by line is still caught when each line is
  redacted on its own. This masks such a line wherever it appears, even
  outside the value (e.g. a PEM file's ``-----END PRIVATE KEY-----``).

* the value with invisible characters inserted anywhere in it: a carriage
  return, NUL, zero-width spaces and joiners, the word joiner, soft hyphens,
  byte-order marks and bidirectional marks (``INVISIBLE``). Such characters
  show nothing on a page or a terminal, so ``"ab\\rcd"`` or
  ``"ab\\u200bcd"`` would otherwise print a readable secret unmasked. Text
  that holds one is matched a second time with them removed, and what
  matched is masked in the original text, invisible characters included.

Limits (see the README): values shorter than 4 characters are not redacted
(they would mask ordinary words and numbers), and a value the code
transforms before printing (base64, upper-cased, reversed, sliced into
pieces shorter than the value, printed one character at a time on separate
lines, look-alike letters, visible characters inserted) is not recognised.

Speed: one compiled regular expression finds candidates. It is a trie of
the values' first 32 characters, so at each position of the text only the
branch of the next character is tried however many secrets there are, and
a 64 KB value costs no more to compile than a 32-character one; candidates
are then confirmed with ``str.startswith``. A line without any candidate
costs one ``re.search`` call: 0.4-0.7 µs for a 60-character line with 20
secrets on this kind of machine (tests/unit/test_secrets_redaction.py
measures 1M lines).
"""

from __future__ import annotations

import json
import re
from typing import Iterable

MIN_LENGTH = 4
MASK = "****"
_PREFIX = 32  # characters of each value the regular expression looks for

# Characters that render as nothing: removed before a second match (see the module docstring).
INVISIBLE = "\r\x00\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff" + "".join(
    chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
_INVISIBLE_SEARCH = re.compile(f"[{re.escape(INVISIBLE)}]").search
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE)


def _has_invisible(text: str) -> bool:
    # str.isascii() is a flag CPython keeps on every string, and in ASCII text only "\r" and
    # NUL are invisible: most lines cost two memchr() calls, not a second regular expression.
    if text.isascii():
        return "\r" in text or "\x00" in text
    return _INVISIBLE_SEARCH(text) is not None

# Inserted invisible characters a stream holds back room for, beyond the longest value.
_STREAM_SLACK = 64


_ESCAPES = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: repr(text)[1:-1],
)


def _forms(value: str) -> set[str]:
    """Every text form of `value` worth masking (see the module docstring)."""
    forms = {value}
    visible = value.translate(_DROP_INVISIBLE)
    if visible != value:  # the value itself holds some: matched in text they were removed from
        forms.add(visible)
    # Escaped once and twice: JSON inside JSON, a repr inside an exception's repr (`KeyError: '...'`).
    for _ in range(2):
        forms |= {escape(form) for form in forms for escape in _ESCAPES}
    if "\n" in value or "\r" in value:
        forms.update(line for line in value.splitlines())
        forms.update(line.strip() for line in value.splitlines())
    return {form for form in forms if len(form) >= MIN_LENGTH}


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of `words`, the longest one at a position first.

    Chains without a branch are collapsed, so the nesting depth is the number
    of branch points on a path, not the length of a word.
    """
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        alternatives = []
        for char in sorted(key for key in node if key):
            child, run = node[char], char
            while len(child) == 1 and "" not in child:
                (next_char, child), = child.items()
                run += next_char
            alternatives.append(re.escape(run) + build(child))
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        if "" in node:  # a word ends here: the longer words are tried first (greedy), then this one
            body = "(?:" + body + ")?"
        return body

    return build(root)


class Redactor:
    """Masks the given secret values in any text: ``Redactor(values).redact(text)``."""

    def __init__(self, values: Iterable[str]):
        targets: set[str] = set()
        # Kept (in memory only, like the forms below) so that with_values can add more.
        self._values = frozenset(value for value in values if isinstance(value, str) and len(value) >= MIN_LENGTH)
        for value in self._values:
            targets |= _forms(value)
        self.max_length = max((len(t) for t in targets), default=0)
        # For each distinct prefix: every target whose prefix is a prefix of it, longest target
        # first, so that the first one found at a position is the longest secret there.
        prefixes = {t[:_PREFIX] for t in targets}
        self._candidates: dict[str, list[str]] = {}
        for prefix in prefixes:
            self._candidates[prefix] = sorted(
                (t for t in targets if prefix.startswith(t[:_PREFIX])), key=len, reverse=True
            )
        if prefixes:
            try:
                body = _trie_pattern(prefixes)
                re.compile(body)
            except RecursionError:  # pathologically nested prefixes: a plain alternation, longest first
                body = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
            self._search = re.compile(body).search
            self._overlapping = re.compile(f"(?=({body}))").finditer
        else:
            self._search = None
            self._overlapping = None

    def __bool__(self):
        return self._search is not None

    def __repr__(self):
        return f"<Redactor of {len(self._candidates)} prefixes>"  # never the values

    def with_values(self, values: Iterable[str]) -> "Redactor":
        """This redactor if it already masks every one of ``values``; else a new one masking both."""
        more = {value for value in values if isinstance(value, str) and len(value) >= MIN_LENGTH}
        return self if more <= self._values else Redactor(self._values | more)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Merged (start, end) ranges of `text` that are secret, in order."""
        if self._search is None or not text:
            return []
        found = self._plain_spans(text)
        if not _has_invisible(text):
            return found
        # Again without the invisible characters; each range found there is mapped back to
        # the original positions, so the characters inserted into a value are masked with it.
        kept = [index for index, char in enumerate(text) if char not in INVISIBLE]
        visible = "".join(text[index] for index in kept)
        mapped = [(kept[start], kept[end - 1] + 1) for start, end in self._plain_spans(visible)]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(found + mapped):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def _plain_spans(self, text: str) -> list[tuple[int, int]]:
        first = self._search(text)
        if first is None:
            return []
        spans: list[tuple[int, int]] = []
        candidates = self._candidates
        for match in self._overlapping(text, first.start()):
            start = match.start()
            for target in candidates[match.group(1)]:
                if text.startswith(target, start):
                    end = start + len(target)
                    if spans and start <= spans[-1][1]:
                        if end > spans[-1][1]:
                            spans[-1] = (spans[-1][0], end)
                    else:
                        spans.append((start, end))
                    break
        return spans

    def leaves_unchanged(self, text: str) -> bool:
        """Whether redact() returns `text`, and every part of it, unchanged: nothing to look at here.

        One search over many lines joined (AttemptChannel, a batch of output) instead of one per
        line. A part that redact() would change holds a candidate or an invisible character, and
        so does the whole; a candidate found only across two joined parts merely sends the
        caller to redact each part, so this never hides a secret.
        """
        if self._search is None:
            return True
        return self._search(text) is None and not _has_invisible(text)

    def redact(self, text):
        """`text` with every secret occurrence replaced by ``****`` (non-text is returned unchanged)."""
        if self._search is None or not isinstance(text, str):
            return text
        if self._search(text) is None:
            # _has_invisible() inlined: this runs once per output line.
            if text.isascii():
                if "\r" not in text and "\x00" not in text:
                    return text
            elif _INVISIBLE_SEARCH(text) is None:
                return text
        spans = self.spans(text)
        if not spans:
            return text
        out, position = [], 0
        for start, end in spans:
            out.append(text[position:start])
            out.append(MASK)
            position = end
        out.append(text[position:])
        return "".join(out)

    __call__ = redact


class StreamRedactor:
    """Redacts a stream that arrives in chunks: ``feed(chunk) -> str`` then ``flush() -> str`` at the end.

    Holds back the last (longest value - 1) characters of what it was fed, so
    a value split across two writes is still caught; the concatenation of
    everything returned equals ``Redactor.redact`` of the whole stream.
    """

    def __init__(self, values: Iterable[str] = (), *, redactor: Redactor | None = None):
        self.redactor = redactor if redactor is not None else Redactor(values)
        # Room for a value with a few invisible characters inserted, too.
        self._hold = max(self.redactor.max_length - 1 + _STREAM_SLACK, 0) if self.redactor else 0
        self._buffer = ""
        # Leading characters of the buffer known to belong to a secret whose start was already emitted.
        self._masked_prefix = 0
        # The last output ended inside a masked run that continues in the buffer (so no second "****").
        self._in_mask = False

    def feed(self, chunk: str) -> str:
        if not chunk:
            return ""
        if not self.redactor:
            return chunk
        self._buffer += chunk
        return self._emit(final=False)

    def flush(self) -> str:
        return self._emit(final=True) if self._buffer else ""

    def _emit(self, *, final: bool) -> str:
        buffer = self._buffer
        cut = len(buffer) if final else len(buffer) - self._hold
        if cut <= 0:
            return ""
        # Any secret starting before `cut` lies wholly inside the buffer, so its span is final.
        spans = self.redactor.spans(buffer)
        if self._masked_prefix:
            merged = [(0, self._masked_prefix)]
            for start, end in spans:
                if start <= merged[-1][1]:
                    merged[-1] = (0, max(end, merged[-1][1]))
                else:
                    merged.append((start, end))
            spans = merged
        out, position, masked_prefix, in_mask = [], 0, 0, False
        for start, end in spans:
            if start >= cut:
                break
            out.append(buffer[position:start])
            if not (start == 0 and self._in_mask):
                out.append(MASK)
            if end > cut:
                masked_prefix, in_mask, position = end - cut, True, cut
                break
            position = end
        out.append(buffer[position:cut])
        self._buffer = buffer[cut:]
        self._masked_prefix, self._in_mask = masked_prefix, in_mask
        return "".join(out)
