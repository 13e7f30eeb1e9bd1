"""StaticAllocator: rules in the config and in a rules file (the original agent's format),
merged in order; the file read again when it changes, a broken one keeping the last good rules;
and the original's example config running on real cgroups."""
import logging
import os
import subprocess

import pytest

from allocation_fixtures import ListNode, read, rejected, runner, task
from conftest import REPO, plugin_env, promtool_check, wca_command, write_config
from wca.allocators import AllocationType as A, RDTAllocation
from wca.config import ConfigError, load_config_text
from wca.detectors import TaskData
from wca.nodes.static import StaticNode
from wca.static_allocator import StaticAllocator, load_yaml, parse_rules


def tasks_data(**labels_by_task):
    return {task_id: TaskData(name=task_id, task_id=task_id, cgroup_path='/' + task_id,
                              labels=labels) for task_id, labels in labels_by_task.items()}


def test_rules_merge_in_order_per_task_and_type():
    allocator = StaticAllocator(rules=[
        {'name': 'all', 'allocations': {'cpu_quota': 1.0, 'cpu_shares': 10, 'cpuset_cpus': '1-3'}},
        {'name': 'foo', 'labels': {'foo': 'ba[rz]'},
         'allocations': {'cpu_shares': 0.5, 'rdt': {'name': '', 'l3': 'L3:0=0000f;1=0000f'}}},
        {'name': 'one', 'task_id': 'c', 'allocations': {'cpu_quota': 0.2}},
        {'name': 'one, if labelled', 'task_id': 'a', 'labels': {'x': 'y'},
         'allocations': {'cpu_quota': 0.9}},
    ])
    data = tasks_data(a={'foo': 'bar'}, b={'foo': 'bazooka', 'other': '1'}, c={'foo': 'qux'})
    allocations, anomalies, metrics = allocator.allocate(None, data)
    rdt = RDTAllocation(name='', l3='L3:0=0000f;1=0000f')
    assert allocations == {
        'a': {A.QUOTA: 1.0, A.SHARES: 0.5, A.CPUSET_CPUS: '1-3', A.RDT: rdt},
        'b': {A.QUOTA: 1.0, A.SHARES: 0.5, A.CPUSET_CPUS: '1-3', A.RDT: rdt},  # re.match
        'c': {A.QUOTA: 0.2, A.SHARES: 10, A.CPUSET_CPUS: '1-3'}}
    assert [(m.name, m.value) for m in metrics] == [('wca_static_allocator_rules', 4)]
    assert anomalies == []


@pytest.mark.parametrize('rules, message', [
    ({'name': 'x'}, 'rules: expected a list of rules, got dict'),
    (['x'], 'rules[0]: expected a rule (a mapping with name, labels, task_id, allocations), got str'),
    ([{'name': 'r', 'lables': {}}], "rules[0] (r): unknown key 'lables'; a rule has: name, task_id, "
                                    "labels, allocations"),
    ([{'name': 'r'}], 'rules[0] (r): missing "allocations"'),
    ([{'allocations': {'cpu_quta': 1}}], "rules[0]: allocations: unknown allocation type "
                                         "'cpu_quta'; expected one of: cpu_quota, cpu_shares, rdt, "
                                         "cpuset_cpus, cpuset_mems, cpuset_memory_migrate, "
                                         "migrate_pages"),
    ([{'allocations': {'cpu_quota': 2}}], 'rules[0]: allocations.cpu_quota: cpu_quota must be in '
                                          '[0, 1.0] (a fraction of the whole platform; 1.0 is '
                                          'unlimited), got 2'),
    ([{'allocations': {'cpuset_cpus': '3-1'}}], "rules[0]: allocations.cpuset_cpus: reversed "
                                                "range '3-1' in cpu list '3-1'"),
    ([{'allocations': {'rdt': {'l4': 'x'}}}], "rules[0]: allocations.rdt: unknown key 'l4'; rdt "
                                              "has: name, l3, mb"),
    ([{'labels': {'a': '('}, 'allocations': {}}], "rules[0]: labels.a: '(' is not a regular "
                                                  "expression: missing ), unterminated subpattern "
                                                  "at position 0"),
])
def test_bad_rules_are_config_errors(rules, message):
    with pytest.raises(ValueError) as error:
        StaticAllocator(rules=rules)
    assert str(error.value) == message


def test_inline_rules_in_a_config_error_name_file_and_line():
    with pytest.raises(ConfigError) as error:
        load_config_text('''\
runner: !AllocationRunner
  node: !StaticNode {tasks: []}
  allocator: !StaticAllocator
    rules:
    - name: r
      allocations: {cpu_quota: 5}
''', 'wca.yaml')
    assert str(error.value).startswith('wca.yaml:3: runner.allocator: !StaticAllocator: rules[0] (r): '
                                       'allocations.cpu_quota: cpu_quota must be in [0, 1.0]')


def test_yaml_of_a_rules_file_is_plain_and_bounded():
    assert load_yaml('- &a {name: x, allocations: {cpu_quota: 1}}\n- <<: *a\n  name: y\n',
                     'f') == [{'name': 'x', 'allocations': {'cpu_quota': 1}},
                              {'name': 'y', 'allocations': {'cpu_quota': 1}}]
    bomb = 'a: &a [x, x]\n' + ''.join('%s: &%s [*%s, *%s]\n' % (n, n, p, p) for p, n in zip(
        'abcdefghijklmnopqrst', 'bcdefghijklmnopqrstu'))
    with pytest.raises(ValueError) as error:
        load_yaml(bomb, 'f')
    assert 'more than 100000 values: do YAML aliases expand into each other?' in str(error.value)
    with pytest.raises(ValueError) as error:
        load_yaml('- !!python/object/apply:os.system [true]\n', 'f')
    assert str(error.value) == ('f:1: tag tag:yaml.org,2002:python/object/apply:os.system is not '
                                'allowed in a rules file (plain YAML only)')
    with pytest.raises(ValueError) as error:
        load_yaml('- a: 1\n  a: 2\n', 'f')
    assert str(error.value) == "f:2: duplicate key 'a'"
    assert parse_rules(load_yaml('', 'f')) == []


def write_rules(path, text):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o644)
    st = os.stat(path)  # a later edit in the same clock tick must still be seen as one
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + write_rules.tick))
    write_rules.tick += 1000


write_rules.tick = 1000


def test_a_rules_file_edited_broken_and_fixed_under_a_running_agent(cgroups, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = cgroups.create('task')
    shares = cgroups.layout.v1['cpu'] + path + '/cpu.shares'
    rules = str(tmp_path / 'rules.yaml')
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: 2}\n')
    allocator = StaticAllocator(config=rules)
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]), allocator)

    def errors():
        return anomalies.value('wca_static_allocator_config_errors_total')

    made.iterate()
    assert read(shares) == '2000' and errors() == 0
    made.iterate()
    assert caplog.text.count('rule loaded from') == 1  # not read again while unchanged
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: 3}\n')
    made.iterate()
    assert read(shares) == '3000'
    assert anomalies.value('wca_static_allocator_rules') == 1
    # broken: the last good rules stay in effect, one error
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: 4\n')
    made.iterate()
    with open(shares, 'w') as f:
        f.write('1024')  # reset behind the agent's back: the last good rules write it again
    made.iterate()
    made.iterate()
    assert read(shares) == '3000' and errors() == 1
    logged = [r for r in caplog.records if r.levelname == 'ERROR']
    assert len(logged) == 1
    assert logged[0].getMessage().startswith('StaticAllocator: %s:3: invalid YAML: ' % rules)
    assert logged[0].getMessage().endswith('; 1 rule loaded before stay in effect')
    # wrong in another way: one more error
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: -4}\n')
    made.iterate()
    assert errors() == 2 and read(shares) == '3000'
    assert 'allocations.cpu_shares: cpu_shares must be >= 0, got -4' in caplog.text
    # fixed
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: 5}\n'
                       '- name: more\n  allocations: {cpu_quota: 0.5}\n')
    made.iterate()
    assert read(shares) == '5000' and errors() == 2
    assert anomalies.value('wca_static_allocator_rules') == 2
    assert 'StaticAllocator: rules file %s works again' % rules in caplog.text
    # removed, and refused while others may write it
    os.unlink(rules)
    made.iterate()
    assert errors() == 3 and read(shares) == '5000'
    assert 'rules file %s does not exist; 2 rules loaded before stay in effect' % rules in \
        caplog.text
    write_rules(rules, '- name: all\n  allocations: {cpu_shares: 6}\n')
    os.chmod(rules, 0o666)
    made.iterate()
    assert errors() == 4 and read(shares) == '5000'
    assert 'is writable by group or others (mode 0666): others could change the allocations' in \
        caplog.text
    os.chmod(rules, 0o644)
    made.iterate()
    assert read(shares) == '6000' and errors() == 4
    made.close()


def test_a_missing_file_at_start_is_not_a_config_error(tmp_path):
    allocator = StaticAllocator(config=str(tmp_path / 'later.yaml'))
    allocations, _, metrics = allocator.allocate(None, tasks_data(a={}))
    assert allocations == {}
    assert {m.name: m.value for m in metrics} == {'wca_static_allocator_rules': 0,
                                                  'wca_static_allocator_config_errors_total': 1}
    write_rules(str(tmp_path / 'later.yaml'), '- allocations: {cpu_shares: 1}\n')
    allocations, _, metrics = allocator.allocate(None, tasks_data(a={}))
    assert allocations == {'a': {A.SHARES: 1}}


def test_the_original_example_runs_on_real_cgroups(cgroups, tmp_path):
    """configs/extra/static_allocator.yaml with its rules file, as shipped, its task pointed at a
    real cgroup (and a second task labelled foo: bar)."""
    one, two = cgroups.create('task1'), cgroups.create('task2')
    with open(os.path.join(REPO, 'configs', 'extra', 'static_allocator.yaml')) as f:
        text = f.read()
    for real, test in (
            ('        - task1\n', '        - %s\n        - %s\n      tasks_labels: {%s: {foo: bar}}\n'
             % (one, two, two.strip('/'))),
            ('  allocator: !StaticAllocator\n', '    interval: 0\n    iterations: 2\n'
                                                '  allocator: !StaticAllocator\n'),
            ('configs/extra/static_allocator_config.yaml',
             os.path.join(REPO, 'configs', 'extra', 'static_allocator_config.yaml'))):
        assert real in text, real
        text = text.replace(real, test)
    text += ('  allocations_storage: !LogStorage {output_filename: %s, overwrite: true}\n'
             '  metrics_storage: !LogStorage {output_filename: %s}\n' % (
                 tmp_path / 'allocations.prom', tmp_path / 'metrics.prom'))
    config = write_config(tmp_path / 'static_allocator.yaml', text)
    result = subprocess.run(wca_command('-c', config, '--root'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env(),
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    cpu = cgroups.layout.v1['cpu']
    assert read(cpu + one + '/cpu.shares') == '10000' and read(cpu + one + '/cpu.cfs_quota_us') == '-1'
    assert read(cpu + two + '/cpu.shares') == '500'
    # 0.3 of 2 CPUs is 600 us per the default 1000 us period, below the kernel's least quota
    # (1 ms): the period is lengthened so that the ratio holds
    assert (read(cpu + two + '/cpu.cfs_quota_us'), read(cpu + two + '/cpu.cfs_period_us')) == (
        '1200', '2000')
    rejections = [line for line in result.stderr.splitlines() if 'allocation rejected' in line]
    cpus = os.sched_getaffinity(0)
    if max(cpus) < 3:  # "1-3" needs four CPUs: rejected alone here, once while it repeats
        assert sum("cpuset_cpus: cpu " in line for line in rejections) == 2, rejections
    assert sum(": rdt: " in line for line in rejections) == (0 if os.path.isdir(
        '/sys/fs/resctrl/info') else 1), rejections
    promtool_check((tmp_path / 'allocations.prom').read_bytes())


def test_tasks_the_rules_name_only_if_present(tmp_path):
    made, metrics, anomalies, stored = runner(
        ListNode([task('/does/not/exist', task_id='t')]),
        StaticAllocator(rules=[{'task_id': 'elsewhere', 'allocations': {'cpu_quota': 0.5}}]))
    made.iterate()
    assert rejected(stored) == {}  # a rule for a task not on this node: nothing, not an error
    made.close()
