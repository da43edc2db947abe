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

Limits (see the README): values shorter than 4 characters are not redacted
(they would mask ordinary words and numbers), and a value the code
transforms before printing (base64, upper-cased, reversed, sliced into
pieces shorter than the value, printed one character at a time on separate
lines) is not recognised.

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


_ESCAPES = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: repr(text)[1:-1],
)


def _forms(value: str) -> set[str]:
    """Every text form of `value` worth masking (see the module docstring)."""
    forms = {value}
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
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_LENGTH:
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

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Merged (start, end) ranges of `text` that are secret, in order."""
        if self._search is None or not text:
            return []
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

    def redact(self, text):
        """`text` with every secret occurrence replaced by ``****`` (non-text is returned unchanged)."""
        if self._search is None or not isinstance(text, str) or self._search(text) is None:
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
        self._hold = max(self.redactor.max_length - 1, 0)
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
