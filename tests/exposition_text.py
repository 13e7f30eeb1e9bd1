"""Test helper (not a test module): reads Prometheus text exposition back into samples, so tests
can compare what a storage delivered with what it was given. Strict: anything unexpected fails."""
from collections import namedtuple

Parsed = namedtuple('Parsed', 'samples types helps order')


def _labels(text, at):
    """Parses '{a="x",b="y"}' starting at text[at] == '{'; returns (labels tuple, index after)."""
    assert text[at] == '{'
    at += 1
    labels = []
    while text[at] != '}':
        equals = text.index('=', at)
        name = text[at:equals]
        assert text[equals + 1] == '"', text
        at = equals + 2
        value = []
        while text[at] != '"':
            if text[at] == '\\':
                escaped = text[at + 1]
                value.append({'\\': '\\', '"': '"', 'n': '\n'}[escaped])
                at += 2
            else:
                value.append(text[at])
                at += 1
        labels.append((name, ''.join(value)))
        at += 1
        if text[at] == ',':
            at += 1
    return tuple(sorted(labels)), at + 1


def parse(text):
    """Parsed(samples {(name, labels tuple): (value float, timestamp int or None)},
    types {family: type}, helps {family: help}, order [family names as they came])."""
    samples, types, helps, order = {}, {}, {}, []
    for line in text.split('\n'):
        if not line:
            continue
        if line.startswith('# HELP ') or line.startswith('# TYPE '):
            _, kind, name, rest = (line.split(' ', 3) + [''])[:4]
            (helps if kind == 'HELP' else types)[name] = (
                rest.replace('\\n', '\n').replace('\\\\', '\\') if kind == 'HELP' else rest)
            if not order or order[-1] != name:
                order.append(name)
            continue
        assert not line.startswith('#'), line
        brace, space = line.find('{'), line.find(' ')
        if brace != -1 and brace < space:
            name = line[:brace]
            labels, at = _labels(line, brace)
        else:
            name, labels, at = line[:space], (), space
        words = line[at:].split()
        assert 1 <= len(words) <= 2, line
        key = (name, labels)
        assert key not in samples, 'duplicate sample %r' % (key,)
        samples[key] = (float(words[0]), int(words[1]) if len(words) == 2 else None)
        if not order or order[-1] != name:
            order.append(name)
    return Parsed(samples, types, helps, order)


def expected(metrics):
    """The samples a list of wca Metrics should come back as (name, sorted labels) -> value."""
    return {(m.name, tuple(sorted((k, str(v)) for k, v in m.labels.items()))): float(m.value)
            for m in metrics}
