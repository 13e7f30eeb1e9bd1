"""The systemd units as shipped: what they promise, checked with systemd's own tools, and the
EL7 unit against the table of the directives' systemd versions (packaging/systemd/directives.tsv)."""
import importlib.machinery
import importlib.util
import os
import re

import pytest
from pkg_fixtures import REPO, require_tool, run

from wca.main import EXIT_CONFIG, EXIT_REFUSED

SYSTEMD = os.path.join(REPO, 'packaging', 'systemd')
UNIT = os.path.join(SYSTEMD, 'wca.service')
EL7_UNIT = os.path.join(SYSTEMD, 'wca-el7.service')
LOADER = importlib.machinery.SourceFileLoader('make_el7_unit', os.path.join(SYSTEMD, 'make-el7-unit'))
el7 = importlib.util.module_from_spec(importlib.util.spec_from_loader('make_el7_unit', LOADER))
LOADER.exec_module(el7)


def settings(unit=UNIT):
    return el7.directives(unit)


def test_exposure_score_is_at_most_2_5(tmp_path):
    require_tool('systemd-analyze', 'apt-get install -y systemd')
    result = run(['systemd-analyze', 'security', '--offline=true', UNIT], cwd=str(tmp_path))
    score = float(re.search(r'Overall exposure level for wca\.service: (\d+\.\d+)',
                            result.stdout).group(1))
    assert score <= 2.5, result.stdout


def test_runs_unprivileged_with_two_capabilities():
    s = settings()
    assert s['User'] == s['Group'] == ['wca']
    assert s['CapabilityBoundingSet'] == s['AmbientCapabilities'] == ['CAP_DAC_OVERRIDE CAP_SETUID']
    assert s['SecureBits'] == ['no-setuid-fixup']
    assert s['NoNewPrivileges'] == ['yes']
    assert s['Restart'] == ['always']
    # never restarted in a loop for what a restart cannot fix: refused to run, config error
    assert s['RestartPreventExitStatus'] == ['%d %d' % (EXIT_REFUSED, EXIT_CONFIG)] == ['1 2']
    assert s['LimitNOFILE'] == ['500000']
    assert s['Type'] == ['notify'] and s['WatchdogSec']
    assert s['ExecStart'] == ['/usr/bin/wca --config /etc/wca/wca_config.yml $WCA_ARGS']


def test_every_setting_of_the_sandbox_keeps_what_the_agent_needs():
    s = settings()
    assert s['ProtectSystem'] == ['strict']
    assert s['ReadWritePaths'] == ['/sys/fs/cgroup -/sys/fs/resctrl']
    assert 'ProtectControlGroups' not in s or s['ProtectControlGroups'] == ['no']
    assert 'ProtectProc' not in s and 'ProcSubset' not in s and 'PrivateNetwork' not in s
    assert s['RestrictAddressFamilies'] == ['AF_UNIX AF_INET AF_INET6']
    assert 'perf_event_open' in s['SystemCallFilter'][0].split()


def test_the_rpm_ships_this_unit(payloads):
    shipped = os.path.join(payloads['python3'], 'usr/lib/systemd/system/wca.service')
    assert open(shipped).read() == open(UNIT).read()


def test_the_el7_rpm_ships_the_el7_unit(payloads):
    shipped = os.path.join(payloads['el7'], 'usr/lib/systemd/system/wca.service')
    assert open(shipped).read() == open(EL7_UNIT).read()


# ---- the table of directives, and the EL7 unit made with it -----------------------------------

def test_every_directive_of_the_unit_is_in_the_table_and_no_other():
    table = el7.read_table()
    used = set(settings())
    assert sorted(used - set(table)) == []
    unused = [d for d, row in table.items() if row['el7'] != 'el7-only' and d not in used]
    assert unused == []


def test_the_table_gives_each_directive_its_version_and_its_el7_treatment():
    for directive, row in el7.read_table().items():
        assert re.match(r'^(<=)?\d+$', row['since']) and row['source'], directive
        assert row['el7'] in ('keep', 'backport', 'replace', 'drop', 'el7-only'), directive
        newer = el7.since(row) > el7.EL7_SYSTEMD
        # kept as it is only when 219 knows it; a backport is named as one, with its source
        assert (row['el7'] == 'keep') <= (not newer), directive
        assert (row['el7'] == 'backport') <= (newer and 'RHEL' in row['note']), directive
        if row['el7'] in ('replace', 'drop'):
            assert row['coverage'] in ('full', 'partial', 'none') and row['note'], directive
            assert (row['coverage'] == 'none') == row['note'].startswith('lost'), directive
        assert (row['el7'] == 'replace') == bool(row['el7_lines']), directive


def test_the_el7_unit_uses_nothing_newer_than_systemd_219_but_the_backports():
    table = el7.read_table()
    found = settings(EL7_UNIT)
    assert sorted(set(found) - set(table)) == []
    newer = sorted(d for d in found if el7.since(table[d]) > el7.EL7_SYSTEMD)
    assert newer == sorted(d for d, row in table.items() if row['el7'] == 'backport')
    assert newer == ['AmbientCapabilities']
    # values 219 cannot parse (it would drop the whole line)
    assert found['ProtectSystem'] == ['full']
    assert not [v for v in found['SystemCallFilter'] if '@' in v or not v.startswith('~')]


def test_the_el7_unit_is_made_from_the_unit_and_the_table():
    assert open(EL7_UNIT).read() == el7.make(), 'run packaging/systemd/make-el7-unit'
    assert el7.main(['--check']) == 0


def test_a_directive_missing_from_the_table_stops_the_el7_unit(tmp_path):
    unit = tmp_path / 'wca.service'
    unit.write_text(open(UNIT).read().replace('ProtectClock=yes', 'ProtectClock=yes\nProtectProc=invisible'))
    with pytest.raises(ValueError, match='ProtectProc= is not in directives.tsv'):
        el7.make(unit=str(unit))


def test_the_el7_unit_keeps_the_privileges_and_what_the_sandbox_allows():
    modern, old = settings(), settings(EL7_UNIT)
    for key in ('User', 'Group', 'CapabilityBoundingSet', 'AmbientCapabilities', 'SecureBits',
                'NoNewPrivileges', 'Type', 'NotifyAccess', 'WatchdogSec', 'ExecStart', 'Restart',
                'RestartPreventExitStatus', 'LimitNOFILE', 'ProtectHome', 'PrivateTmp',
                'PrivateDevices', 'RestrictAddressFamilies', 'SystemCallArchitectures',
                'SystemCallErrorNumber', 'UMask', 'WorkingDirectory'):
        assert old[key] == modern[key], key
    # ProtectSystem=strict: all read-only, but the state directory, cgroupfs and resctrlfs
    assert old['ReadOnlyDirectories'] == ['/']
    assert old['ReadWriteDirectories'] == ['/var/lib/wca ' + modern['ReadWritePaths'][0]]
    assert modern['StateDirectory'] == ['wca']


def test_what_el7_loses_is_documented():
    doc = open(os.path.join(REPO, 'docs', 'systemd-units.md')).read()
    for directive, row in el7.read_table().items():
        if row['coverage'] in ('partial', 'none'):
            assert '`%s=`' % directive in doc, directive


def test_the_el7_deny_list_denies_only_what_the_unit_does_not_allow():
    """systemd-analyze of this host expands wca.service's "@" groups; the EL7 deny list must
    not take away a call the agent may make on current systemd, and must hold the calls the
    sandbox is for."""
    require_tool('systemd-analyze', 'apt-get install -y systemd')
    allowed = el7.allowed_syscalls(settings()['SystemCallFilter'])
    denied = el7.read_denylist()
    assert 'perf_event_open' in allowed and 'migrate_pages' in allowed and 'setpriority' not in allowed
    assert sorted(set(denied) & allowed) == []
    assert denied == sorted(set(denied))
    for name in ('mount', 'umount2', 'reboot', 'kexec_load', 'init_module', 'finit_module',
                 'delete_module', 'ptrace', 'swapon', 'pivot_root', 'settimeofday', 'sethostname',
                 'syslog', 'setpriority', 'sched_setaffinity', 'sched_setscheduler', 'set_mempolicy',
                 'bpf'):
        assert name in denied, name
