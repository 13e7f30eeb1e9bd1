"""Prometheus text exposition cut into metric families, for storages that must split it
(KafkaStorage: messages of a bounded size) or rewrite it (the endpoint: OpenMetrics).

Works on the bytes that wca.exposition.encode() produced (families with their # HELP and # TYPE
lines, then their samples), so it stays independent of how encode() gets there.
"""
from typing import List, Optional, Tuple

# Sample name suffixes that still belong to the family named without them (in a summary or
# histogram; a counter's or gauge's samples have the family's name in this format).
_GROUPED = frozenset((b'summary', b'histogram'))
_SUFFIXES = frozenset((b'_created', b'_count', b'_sum', b'_bucket'))


class Family:
    """One metric family: its name, its # HELP / # TYPE lines and its other lines (samples, and
    any other comment), each without the trailing newline."""
    __slots__ = ('name', 'headers', 'lines', 'kind')

    def __init__(self, name: bytes):
        self.name = name
        self.headers = []  # type: List[bytes]
        self.lines = []  # type: List[bytes]
        self.kind = None  # type: Optional[bytes]  from its # TYPE line

    def header(self, keyword: bytes) -> Optional[bytes]:
        """The text after '# HELP name ' or '# TYPE name ', or None."""
        prefix = b'# ' + keyword + b' ' + self.name + b' '
        for line in self.headers:
            if line.startswith(prefix):
                return line[len(prefix):]
            if line == prefix[:-1]:  # '# HELP name' with an empty text
                return b''
        return None

    def text(self, lines=None) -> bytes:
        """The family as exposition text (headers, then `lines` or all of its own), ending with
        a blank line as encode() writes it."""
        return b'\n'.join(self.headers + (self.lines if lines is None else lines)) + b'\n\n'


def sample_name(line: bytes) -> bytes:
    """The metric name of a sample line: up to '{' or the first space."""
    end = len(line)
    for separator in (b'{', b' '):
        index = line.find(separator, 0, end)
        if index >= 0:
            end = index
    return line[:end]


def families(data: bytes) -> List[Family]:
    """Cuts exposition text into families, in order. Blank lines go; comments other than HELP
    and TYPE stay with the family they are in."""
    out = []  # type: List[Family]
    current = None  # type: Optional[Family]
    for line in data.split(b'\n'):
        if not line:
            continue
        if line[:1] == b'#':
            words = line.split(None, 3)
            if len(words) >= 3 and words[1] in (b'HELP', b'TYPE'):
                if current is None or current.name != words[2] or current.lines:
                    current = Family(words[2])
                    out.append(current)
                current.headers.append(line)
                if words[1] == b'TYPE' and len(words) == 4:
                    current.kind = words[3].strip()
            elif current is not None:
                current.lines.append(line)
            else:
                current = Family(b'')
                out.append(current)
                current.lines.append(line)
            continue
        name = sample_name(line)
        if current is None or not (name == current.name or (
                current.kind in _GROUPED and name.startswith(current.name)
                and name[len(current.name):] in _SUFFIXES)):
            current = Family(name)
            out.append(current)
        current.lines.append(line)
    return out


def sample_count(text: bytes) -> int:
    """Number of sample lines in exposition text (lines that are neither blank nor comments)."""
    if not text:
        return 0
    lines = text.count(b'\n') + (0 if text.endswith(b'\n') else 1)
    comments = text.count(b'\n#') + (1 if text.startswith(b'#') else 0)
    blanks = text.count(b'\n\n') + (1 if text.startswith(b'\n') else 0)
    return lines - comments - blanks


def split_exposition(data: bytes, limit: int) -> Tuple[List[bytes], int]:
    """Splits exposition text into parts of at most `limit` bytes, each a valid exposition on its
    own: whole families where they fit, and a family larger than `limit` split by samples with
    its # HELP and # TYPE lines repeated in every part. Nothing is lost, except a sample that does
    not fit in `limit` even alone with its family's headers. Returns (parts, samples dropped)."""
    if len(data) <= limit:
        return ([data] if data else []), 0
    parts = []  # type: List[bytes]
    pending = []  # type: List[bytes]
    size = 0
    dropped = 0
    for family in families(data):
        text = family.text()
        if len(text) > limit:  # split by samples, headers in each part
            if pending:
                parts.append(b''.join(pending))
                pending, size = [], 0
            head = len(b'\n'.join(family.headers)) + 1 if family.headers else 0
            chunk = []  # type: List[bytes]
            chunk_size = head + 1  # + the blank line
            for line in family.lines:
                cost = len(line) + 1
                if head + 1 + cost > limit:
                    dropped += 1
                    continue
                if chunk_size + cost > limit:
                    parts.append(family.text(chunk))
                    chunk, chunk_size = [], head + 1
                chunk.append(line)
                chunk_size += cost
            if chunk:
                # The rest of the family may share its part with the families after it.
                text = family.text(chunk)
            else:
                continue
        if size + len(text) > limit and pending:
            parts.append(b''.join(pending))
            pending, size = [], 0
        pending.append(text)
        size += len(text)
    if pending:
        parts.append(b''.join(pending))
    return parts, dropped
