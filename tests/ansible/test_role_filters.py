"""The wca role's filters (ansible/roles/wca/filter_plugins/wca_filters.py): the agent's config
from variables, loaded back by the agent's own loader, and kernel command lines."""
import importlib.util
import os

import pytest

from wca.config import load_config
from wca.runners.base import Runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = importlib.util.spec_from_file_location(
    'wca_role_filters', os.path.join(REPO, 'ansible', 'roles', 'wca', 'filter_plugins',
                                     'wca_filters.py'))
filters = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(filters)


class AnsibleText(str):
    """Ansible hands filters str subclasses (AnsibleUnsafeText) and dict subclasses."""


def role_default_config():
    return {'runner': {
        'kind': AnsibleText('DetectionRunner'),
        'node': {'kind': 'CgroupDirectoryNode', 'root': '/', 'max_depth': 2},
        'metrics_storage': {'kind': 'FilterStorage', 'filter': ['wca_up'], 'storages': [
            {'kind': 'LogStorage', 'output_filename': '/var/lib/wca/metrics.prom',
             'overwrite': True}]},
        'detector': {'kind': 'NOPAnomalyDetector'},
        'anomalies_storage': {'kind': 'LogStorage'},
        'interval': 2.5,
        'extra_labels': {'rollout': AnsibleText('first'),
                         'own_ip': {'kind': 'Env', 'name': 'WCA_TEST_HOST_IP'}},
    }, 'loggers': {'wca.runners': 'debug'}}


def test_config_yaml_is_what_the_agent_loads(tmp_path, monkeypatch):
    text = filters.wca_config_yaml(role_default_config())
    assert text.splitlines()[:3] == ['runner: !DetectionRunner', '  node: !CgroupDirectoryNode',
                                     '    root: /']
    assert "own_ip: !Env 'WCA_TEST_HOST_IP'" in text or 'own_ip: !Env WCA_TEST_HOST_IP' in text
    path = tmp_path / 'wca_config.yml'
    path.write_text(text)
    os.chmod(str(path), 0o644)
    monkeypatch.setenv('WCA_TEST_HOST_IP', '10.0.0.1')
    loaded = load_config(str(path), Runner)
    runner = loaded['runner']
    assert type(runner).__name__ == 'DetectionRunner'
    assert loaded['loggers'] == {'wca.runners': 'debug'}
    config = runner.config
    assert config.interval == 2.5
    assert config.extra_labels == {'rollout': 'first', 'own_ip': '10.0.0.1'}
    assert type(config.metrics_storage).__name__ == 'FilterStorage'
    assert config.metrics_storage.storages[0].output_filename == '/var/lib/wca/metrics.prom'


def test_config_yaml_keeps_strings_that_look_like_other_types():
    text = filters.wca_config_yaml({'runner': {'kind': 'R', 'labels': {'a': 'yes', 'b': '1'}}})
    assert "a: 'yes'" in text and "b: '1'" in text


@pytest.mark.parametrize('bad, message', [
    ({'runner': {'kind': 'Not a class'}}, 'config.runner.kind: expected a component class'),
    ({'runner': {'kind': 'R', 'x': {'kind': 'Env'}}}, 'config.runner.x: an environment variable'),
    ({'runner': {'kind': 'R', 'x': object()}}, 'config.runner.x: cannot put a object'),
])
def test_config_yaml_refuses_what_is_not_a_config(bad, message):
    with pytest.raises(ValueError) as error:
        filters.wca_config_yaml(bad)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize('current, expected', [
    ('', 'rdt=cmt,mbmtotal'),
    ('quiet', 'quiet rdt=cmt,mbmtotal'),
    ('console=ttyS0 rdt=l3cat quiet', 'console=ttyS0 rdt=cmt,mbmtotal quiet'),
    ('rdt=cmt,mbmtotal quiet', 'rdt=cmt,mbmtotal quiet'),
    ('rdt=l3cat rdt=cmt quiet', 'rdt=cmt,mbmtotal quiet'),
    ('rdtx=1 nordt', 'rdtx=1 nordt rdt=cmt,mbmtotal'),
])
def test_kernel_args_replace_an_earlier_value_of_the_key(current, expected):
    assert filters.wca_kernel_args(current, 'rdt=cmt,mbmtotal') == expected
    # idempotent
    assert filters.wca_kernel_args(expected, 'rdt=cmt,mbmtotal') == expected


def test_kernel_args_conflicts_missing_and_the_default_line():
    wanted = 'rdt=cmt,mbmtotal nosmt'
    assert filters.wca_kernel_args_conflicts('quiet rdt=l3cat nosmt', wanted) == ['rdt=l3cat']
    assert filters.wca_kernel_args_missing('BOOT_IMAGE=/vmlinuz rdt=l3cat', wanted) == [
        'rdt=cmt,mbmtotal', 'nosmt']
    assert filters.wca_kernel_args_missing('rdt=cmt,mbmtotal ro nosmt', wanted) == []
    assert filters.wca_kernel_args_without_conflicts('quiet rdt=l3cat', wanted) == 'quiet'


def test_shell_variable_is_the_last_assignment_unquoted():
    text = ('# GRUB_CMDLINE_LINUX="commented"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
            'GRUB_CMDLINE_LINUX="a b"\nGRUB_CMDLINE_LINUX=\'c d\'  \n')
    assert filters.wca_shell_variable(text, 'GRUB_CMDLINE_LINUX') == 'c d'
    assert filters.wca_shell_variable(text, 'GRUB_CMDLINE_LINUX_DEFAULT') == 'quiet'
    assert filters.wca_shell_variable('GRUB_CMDLINE_LINUX=ro\n', 'GRUB_CMDLINE_LINUX') == 'ro'
    assert filters.wca_shell_variable('', 'GRUB_CMDLINE_LINUX') == ''


def test_unquotable_values():
    assert filters.wca_unquotable(['-l', 'info', 'wca.runners:debug']) == []
    assert filters.wca_unquotable(['a b', '', 'x"y', "x'y", 'a\\b', '$HOME', '`id`', 'a\nb']) == [
        'a b', '', 'x"y', "x'y", 'a\\b', '$HOME', '`id`', 'a\nb']
    assert filters.wca_unquotable(['10.0.0.1 and more'], spaces=True) == []


def test_the_filter_module_offers_every_filter():
    names = filters.FilterModule().filters()
    assert sorted(names) == sorted(n for n in dir(filters) if n.startswith('wca_'))
