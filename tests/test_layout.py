"""The package's import graph: no cycles (function-level imports included, which can hide
one), and the modules that must stay independent do."""
import ast
import os

import wca

PACKAGE = os.path.dirname(wca.__file__)


def modules():
    """Module name -> source path for every module of the package."""
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                if relative[-1] == '__init__':
                    relative.pop()
                found['.'.join(relative)] = path
    return found


def imports_of(path, known):
    """The package's modules that a module imports, anywhere in it (also inside functions)."""
    targets = set()
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split('.')[0] != 'wca':
                continue
            for alias in node.names:
                submodule = node.module + '.' + alias.name
                targets.add(submodule if submodule in known else node.module)
    return targets


def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def find_cycle(edges):
    state, path = {}, []

    def visit(node):
        state[node] = 'open'
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 'open':
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 'done'
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    edges = graph()
    assert len(edges) > 20 and 'wca.runners.measurement' in edges
    cycle = find_cycle(edges)
    assert cycle is None, ' -> '.join(cycle)


def test_a_cycle_is_found_when_there_is_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def reachable(edges, start):
    seen, todo = set(), [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_independent_modules_stay_independent():
    edges = graph()
    # The schema is what every component annotates its constructor with: it needs nothing.
    assert not {m for m in edges['wca.config.schema'] if m.startswith('wca')}
    # The loader is told the root type; privileges are declared by the runners.
    for module in ('wca.config.loader', 'wca.security', 'wca.config'):
        assert not {m for m in reachable(edges, module) if m.startswith('wca.runners')}, module
    # Kernel interface modules do not know the runners either.
    for module in edges:
        if module.startswith(('wca.cgroups', 'wca.nodes', 'wca.storage', 'wca.platforms',
                              'wca.perf', 'wca.resctrl')):
            assert not {m for m in edges[module] if m.startswith('wca.runners')}, module


def test_an_agent_without_kafka_storage_does_not_load_kafka_python():
    """The composition root imports every component; kafka-python, a few MB and tens of ms at
    every start, is loaded only once a KafkaStorage is configured."""
    import subprocess
    import sys
    code = ('import sys, wca.components; assert "kafka" not in sys.modules\n'
            'from wca.storage.kafka import KafkaStorage\n'
            'KafkaStorage(topic="t"); assert "kafka" in sys.modules')
    subprocess.check_call([sys.executable, '-c', code])
