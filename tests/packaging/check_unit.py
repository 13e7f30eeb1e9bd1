"""The systemd unit as shipped: what it promises, checked with systemd's own tools."""
import os
import re

from pkg_fixtures import REPO, require_tool, run

from wca.main import EXIT_CONFIG, EXIT_REFUSED

UNIT = os.path.join(REPO, 'packaging', 'systemd', 'wca.service')


def settings():
    found = {}
    for line in open(UNIT).read().splitlines():
        if line and not line.startswith(('#', '[')):
            key, _, value = line.partition('=')
            found.setdefault(key, []).append(value)
    return found


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
