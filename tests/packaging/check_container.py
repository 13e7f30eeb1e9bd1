"""The system-python3 RPM installed with rpm into a Debian 12 root file system that runs systemd
as PID 1, and operated the way an operator would: install, start, inspect, restart, upgrade,
erase. The steps run in order on one container (each test is one step)."""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from pkg_fixtures import REPO, require_tool

RPM = '/tmp/wca.rpm'
UNIT = '/usr/lib/systemd/system/wca.service'
CAPABILITIES = {'CAP_DAC_OVERRIDE': 1, 'CAP_SETUID': 7}
SECUREBITS = {'noroot': 0x1, 'noroot-locked': 0x2, 'no-setuid-fixup': 0x4,
              'no-setuid-fixup-locked': 0x8, 'keep-caps': 0x10, 'keep-caps-locked': 0x20}


@pytest.fixture(scope='module')
def box(container, rpms):
    container.copy_in(rpms['python3']['binary'], RPM)
    return container


def unit_setting(box, key):
    values = re.findall(r'^%s=(.*)$' % key, box.read(UNIT), re.M)
    assert len(values) == 1, (key, values)
    return values[0].split()


def capability_mask(names):
    return sum(1 << CAPABILITIES[name] for name in names)


def main_pid(box):
    pid = int(box.sh('systemctl show -P MainPID wca').stdout)
    assert pid > 0
    return pid


def proc_status(box, pid):
    fields = {}
    for line in box.read('/proc/%d/status' % pid).splitlines():
        key, _, value = line.partition(':')
        fields[key] = value.split()
    return fields


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.25)


def wca_ids(box):
    return [int(x) for x in box.sh('id -u wca; id -g wca').stdout.split()]


def last_seen(box):
    text = box.sh('cat /var/lib/wca/metrics.prom 2>/dev/null', check=False).stdout
    m = re.search(r'^platform_last_seen\{[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_install_creates_the_wca_user(box):
    assert box.sh('getent passwd wca', check=False).returncode != 0  # not there before
    box.sh('rpm -i --nodeps %s' % RPM)
    name, _, uid, gid, gecos, home, shell = box.sh('getent passwd wca').stdout.strip().split(':')
    assert int(uid) < 1000, 'not a system user: %s' % uid
    assert (home, shell) == ('/var/lib/wca', '/sbin/nologin')
    assert box.sh('getent group wca').stdout.split(':')[2] == gid
    assert box.sh('stat -c %U:%G:%a /var/lib/wca').stdout.strip() == 'wca:wca:755'
    assert box.sh('rpm -q wca').stdout.startswith('wca-')


def test_version_from_a_plain_shell(box):
    version = box.sh("rpm -q --qf '%{VERSION}' wca").stdout
    # no scl enable, no PATH, no PYTHON* variables
    assert box.sh('env -i /usr/bin/wca --version').stdout.strip() == 'wca ' + version


def test_default_config_is_valid(box):
    out = box.sh('runuser -u wca -- /usr/bin/wca --check-config -c /etc/wca/wca_config.yml')
    assert 'config is valid' in out.stdout


def test_unit_verifies_clean_and_scores_well(box):
    result = box.sh('systemd-analyze verify %s' % UNIT, check=False)
    assert result.returncode == 0 and result.stdout.strip() == '', result.stdout
    security = box.sh('systemd-analyze security wca.service').stdout
    score = float(re.search(r'Overall exposure level for wca\.service: (\d+\.\d+)',
                            security).group(1))
    assert score <= 2.5, security


def test_installation_enables_the_service(box):
    # %post applies the preset policy; Debian's enables services.
    assert box.sh('systemctl is-enabled wca').stdout.strip() == 'enabled'


def test_starts_as_wca_with_exactly_the_privileges_of_the_unit(box):
    box.sh('systemctl start wca')  # Type=notify: returns once the agent said READY=1
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'
    pid = main_pid(box)
    status = proc_status(box, pid)
    uid, gid = wca_ids(box)
    assert [int(x) for x in status['Uid']] == [uid] * 4
    assert [int(x) for x in status['Gid']] == [gid] * 4
    ambient = capability_mask(unit_setting(box, 'AmbientCapabilities'))
    bounding = capability_mask(unit_setting(box, 'CapabilityBoundingSet'))
    assert ambient == bounding == capability_mask(['CAP_DAC_OVERRIDE', 'CAP_SETUID'])
    for field, expected in [('CapAmb', ambient), ('CapBnd', bounding), ('CapPrm', ambient),
                            ('CapEff', ambient), ('CapInh', ambient)]:
        assert int(status[field][0], 16) == expected, (field, status[field])
    assert status['NoNewPrivs'] == ['1']
    assert status['Seccomp'] == ['2']  # the unit's system call filter
    cmdline = box.read('/proc/%d/cmdline' % pid).split('\0')
    assert cmdline[:6] == ['/usr/bin/python3', '-s', '-E', '-B', '/usr/lib64/wca', '--config']


def test_securebits_of_the_running_agent(box):
    """Read from the agent process itself: securebits_of.py makes it call
    prctl(PR_GET_SECUREBITS) under ptrace (gdb's inferior calls fail on AMX CPUs)."""
    expected = sum(SECUREBITS[name] for name in unit_setting(box, 'SecureBits'))
    assert expected == SECUREBITS['no-setuid-fixup']
    pid = main_pid(box)
    helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'securebits_of.py')
    box.copy_in(helper, '/usr/local/lib/wca-securebits-of.py')
    out = box.sh('python3 /usr/local/lib/wca-securebits-of.py %d' % pid).stdout
    assert out.strip() == str(expected), out
    assert main_pid(box) == pid and box.sh('systemctl is-active wca').stdout.strip() == 'active'


def test_agent_writes_metrics_for_the_cgroups(box, build_dir):
    first = wait_for(lambda: last_seen(box), 'the first metrics')
    wait_for(lambda: (last_seen(box) or 0) > first, 'a later iteration')
    # Readable by node_exporter's textfile collector, which runs as its own user, whatever the
    # unit's UMask=0027.
    assert box.sh('stat -c %U:%a /var/lib/wca/metrics.prom').stdout.strip() == 'wca:644'
    as_other_user = box.sh('runuser -u nobody -- cat /var/lib/wca/metrics.prom', check=False)
    assert as_other_user.returncode == 0, as_other_user.stdout
    assert 'task_cpu_usage_seconds{' in as_other_user.stdout
    text = box.read('/var/lib/wca/metrics.prom')
    # It measured the cgroups it found, its own service's among them.
    assert re.search(r'^task_cpu_usage_seconds\{.*task_id="system\.slice/wca\.service"', text,
                     re.M), text[:2000]
    promtool = os.path.join(REPO, '.tools', 'bin', 'promtool')
    if not os.path.exists(promtool):
        promtool = require_tool('promtool', 'make test-tools')
    result = subprocess.run([promtool, 'check', 'metrics'], input=text.encode(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode in (0, 3), result.stdout  # 3: naming lint only, parsed fine


def test_watchdog_is_fed(box):
    assert box.sh('systemctl show -P WatchdogUSec wca').stdout.strip() == '1min'
    before = int(box.sh('systemctl show -P WatchdogTimestampMonotonic wca').stdout)
    wait_for(lambda: int(box.sh('systemctl show -P WatchdogTimestampMonotonic wca').stdout) >
             before, 'a WATCHDOG=1', timeout=10)


def test_sandbox_allows_what_the_agent_needs_and_no_more(box):
    """The installed unit with only its command swapped for a probe (same user, capabilities,
    securebits, file system, address families, system call filter)."""
    probe = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sandbox_probe.py')
    box.copy_in(probe, '/usr/local/lib/wca-sandbox-probe.py')
    # Writable cgroup hierarchies, as root sees them outside the sandbox.
    mounts = box.sh("findmnt -rn -t cgroup,cgroup2 -O rw -o TARGET").stdout.split()
    assert mounts
    box.sh('cp %s /etc/systemd/system/wca-probe.service && '
           'mkdir -p /etc/systemd/system/wca-probe.service.d && touch /tmp/wca-probe-marker' % UNIT)
    box.sh("cat > /etc/systemd/system/wca-probe.service.d/probe.conf <<'EOF'\n"
           '[Service]\nType=oneshot\nRestart=no\nWatchdogSec=0\nExecStart=\n'
           'ExecStart=/usr/bin/python3 /usr/local/lib/wca-sandbox-probe.py '
           '/var/lib/wca/probe.json 9092 %s\nEOF' % ' '.join(mounts))
    # A stand-in for Kafka on loopback: greets and closes.
    box.bed.docker('exec', '-d', box.name, 'python3', '-c',
                   'import socket; s = socket.socket(); '
                   's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); '
                   's.bind(("127.0.0.1", 9092)); s.listen(1); c, _ = s.accept(); '
                   'c.sendall(b"kafka\\n"); c.close()')
    wait_for(lambda: ':9092' in box.sh('ss -ltn').stdout, 'the TCP listener')
    try:
        box.sh('systemctl daemon-reload && systemctl start wca-probe')
        results = json.loads(box.read('/var/lib/wca/probe.json'))
    finally:
        box.sh('rm -rf /etc/systemd/system/wca-probe.service* /var/lib/wca/probe.json '
               '/tmp/wca-probe-marker && systemctl daemon-reload', check=False)
    uid, gid = wca_ids(box)
    caps = '%016x' % capability_mask(['CAP_DAC_OVERRIDE', 'CAP_SETUID'])
    assert (results['uid'], results['euid'], results['gid']) == (uid, uid, gid)
    assert results['CapEff'] == results['CapAmb'] == caps
    assert results['securebits'] == SECUREBITS['no-setuid-fixup']
    # Allowed: what the agent does.
    assert results['read_proc'] == 'ok'
    for mount in mounts:
        assert results['write_cgroup ' + mount] == 'ok', results
    assert results['perf_event_open'] == 'ok'
    assert results['tcp'] == 'ok'
    assert results['write_state_dir'] == 'ok'
    # effective uid 0 and back keeps the capabilities (SecureBits=no-setuid-fixup)
    assert results['euid_round_trip'] == 'CapEff=' + caps
    # Refused: the rest of the system.
    assert results['write_etc'].startswith('EROFS'), results
    assert results['write_usr'].startswith('EROFS'), results
    assert results['netlink'].startswith('EAFNOSUPPORT'), results
    assert results['sched_setaffinity'].startswith('EPERM'), results
    assert box.sh('ls -A /root').stdout.split()  # root's home has files...
    assert results['list_root_home'] == []  # ...which the service cannot see
    assert results['see_host_tmp'] == 'ok'  # a private /tmp


ALLOCATION_RULES = """\
- name: every allocation type
  task_id: {task}
  allocations: {{cpu_quota: 0.5, cpu_shares: 2, cpuset_cpus: "0", cpuset_mems: "0",
                cpuset_memory_migrate: 1, migrate_pages: 0}}
"""
ALLOCATION_CONFIG = """\
runner: !AllocationRunner
  node: !StaticNode {{tasks: [{task}]}}
  allocator: !StaticAllocator {{config: /etc/wca/allocation_rules.yaml}}
  metrics_storage: !LogStorage {{output_filename: /var/lib/wca/metrics.prom, overwrite: true}}
  allocations_storage: !LogStorage {{output_filename: /var/lib/wca/allocations.prom, overwrite: true}}
  anomalies_storage: !LogStorage {{output_filename: /var/lib/wca/anomalies.prom, overwrite: true}}
"""
# Its v1 cpu, cpuacct and cpuset cgroups (no memory one: without memory.numa_stat the agent
# cannot tell that the pages are on node 0 already, and calls migrate_pages every iteration),
# and one process in them, started as `user`.
ALLOCATION_TASK = """\
for c in cpu cpuacct cpuset; do mkdir -p /sys/fs/cgroup/$c/{task}; done
cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/{task}/cpuset.cpus
cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/{task}/cpuset.mems
setsid sh -c 'for c in cpu cpuacct cpuset; do echo $$ > /sys/fs/cgroup/$c/{task}/cgroup.procs; done
    exec setpriv --reuid={user} --regid={user} --clear-groups sleep 3600' \\
    > /dev/null 2>&1 < /dev/null &
"""


def allocation_counters(box):
    text = box.sh('cat /var/lib/wca/allocations.prom 2>/dev/null', check=False).stdout
    found = {}
    for name, labels, value in re.findall(r'^(allocations_(?:written|rejected)_total)\{([^}]*)\} '
                                          r'(\S+)$', text, re.M):
        found[(name[12:-6],) + tuple(sorted(re.findall(r'(?:allocation_type|reason)="(\w+)"',
                                                       labels)))] = float(value)
    return found


def test_every_allocation_type_under_the_unit(box):
    """The agent under the installed unit applies each cgroup allocation type to a real task
    (the files read back) and migrate_pages (allowed by the unit's system call filter) to a
    process of its own user; another user's process takes CAP_SYS_PTRACE, the drop-in
    docs/allocation.md gives. (RDT needs resctrl, which this machine lacks.) The container's
    v1 hierarchies are read-only, as docker mounts them: made writable as on a host."""
    task = 'wca-alloc-%s' % uuid.uuid4().hex[:8]
    hierarchies = ('cpu', 'cpuacct', 'cpuset', 'memory')
    box.sh('cp -p /etc/wca/wca_config.yml /root/wca_config.yml.good')
    try:
        box.sh(' && '.join('mount -o remount,bind,rw /sys/fs/cgroup/%s' % c for c in hierarchies))
        box.sh(ALLOCATION_TASK.format(task=task, user='wca'))
        box.sh("cat > /etc/wca/allocation_rules.yaml <<'EOF'\n%sEOF" % ALLOCATION_RULES.format(
            task=task))
        box.sh("cat > /etc/wca/wca_config.yml <<'EOF'\n%sEOF" % ALLOCATION_CONFIG.format(
            task=task))
        box.sh('rm -f /var/lib/wca/allocations.prom && systemctl restart wca')
        counters = wait_for(lambda: allocation_counters(box).get(('written', 'migrate_pages')),
                            'migrate_pages written') and allocation_counters(box)
        assert not [key for key in counters if key[0] == 'rejected'], counters
        for kind in ('cpu_quota', 'cpu_shares', 'cpuset_cpus', 'cpuset_memory_migrate'):
            assert counters[('written', kind)] == 1, (kind, counters)  # once: then it is held
        assert counters[('written', 'cpuset_mems')] == 0  # node 0 is the only one: held already
        cpus = int(box.sh('nproc').stdout)
        read = {name: box.sh('cat /sys/fs/cgroup/%s/%s/%s' % (name.split('.')[0], task, name)
                             ).stdout.strip()
                for name in ('cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.shares', 'cpuset.cpus',
                             'cpuset.mems', 'cpuset.memory_migrate')}
        # half the box: 500 us per 1000 us period per CPU; on one CPU the period is lengthened
        # (the kernel's least quota is 1000 us), so that the ratio holds
        quota, period = (500 * cpus, 1000) if cpus > 1 else (1000, 2000)
        assert read == {'cpu.cfs_quota_us': str(quota), 'cpu.cfs_period_us': str(period),
                        'cpu.shares': '2000', 'cpuset.cpus': '0', 'cpuset.mems': '0',
                        'cpuset.memory_migrate': '1'}
        # A root-owned process: refused without CAP_SYS_PTRACE, moved with the drop-in.
        box.sh('for p in $(cat /sys/fs/cgroup/cpu/%s/cgroup.procs); do kill $p; done' % task)
        box.sh(ALLOCATION_TASK.format(task=task, user='root'))
        wait_for(lambda: allocation_counters(box).get(('rejected', 'migrate_pages', 'permission')),
                 'migrate_pages of a root process refused')
        assert 'migrate_pages of process' in journal(box)
        box.sh("mkdir -p /etc/systemd/system/wca.service.d && printf '[Service]\\n"
               "CapabilityBoundingSet=CAP_SYS_PTRACE\\nAmbientCapabilities=CAP_SYS_PTRACE\\n' "
               "> /etc/systemd/system/wca.service.d/ptrace.conf && systemctl daemon-reload && "
               "rm -f /var/lib/wca/allocations.prom && systemctl restart wca")
        counters = wait_for(lambda: allocation_counters(box).get(('written', 'migrate_pages')),
                            'migrate_pages written with CAP_SYS_PTRACE') and allocation_counters(box)
        assert not [key for key in counters if key[0] == 'rejected'], counters
    finally:
        box.sh('rm -rf /etc/systemd/system/wca.service.d /etc/wca/allocation_rules.yaml && '
               'cp -p /root/wca_config.yml.good /etc/wca/wca_config.yml && '
               'systemctl daemon-reload && systemctl restart wca', check=False)
        box.sh('for p in $(cat /sys/fs/cgroup/cpu/%s/cgroup.procs); do kill $p; done; sleep 0.5; '
               'for c in cpu cpuacct cpuset; do rmdir /sys/fs/cgroup/$c/%s; done' % (task, task),
               check=False)
        box.sh(' ; '.join('mount -o remount,bind,ro /sys/fs/cgroup/%s' % c for c in hierarchies),
               check=False)
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'


def test_stops_cleanly_and_restarts(box):
    old = main_pid(box)
    box.sh('systemctl stop wca')
    # SIGTERM: the agent says STOPPING=1 and exits 0
    shown = box.sh('systemctl show -p Result -p ExecMainCode -p ExecMainStatus wca').stdout
    assert sorted(shown.split()) == ['ExecMainCode=1', 'ExecMainStatus=0', 'Result=success']
    box.sh('systemctl start wca')
    started = main_pid(box)
    assert started != old
    before = wait_for(lambda: last_seen(box), 'metrics')
    box.sh('systemctl restart wca')
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'
    new = main_pid(box)
    assert new != started
    assert box.sh('kill -0 %d' % started, check=False).returncode != 0
    wait_for(lambda: (last_seen(box) or 0) > before, 'metrics after the restart')


def test_a_long_interval_keeps_the_watchdog_fed(box):
    """interval: 3600 under WatchdogSec=1: the agent pings every 0.5 s while it waits for the
    next iteration, and systemd never kills it."""
    box.sh('cp -p /etc/wca/wca_config.yml /root/wca_config.yml.good')
    try:
        box.sh("mkdir -p /etc/systemd/system/wca.service.d && printf '[Service]\\nWatchdogSec=1\\n' "
               "> /etc/systemd/system/wca.service.d/watchdog.conf && "
               "echo '  interval: 3600' >> /etc/wca/wca_config.yml")
        box.sh('systemctl daemon-reload && systemctl restart wca')
        pid = main_pid(box)
        pinged = int(box.sh('systemctl show -P WatchdogTimestampMonotonic wca').stdout)
        time.sleep(3)
        assert box.sh('systemctl is-active wca').stdout.strip() == 'active'
        assert main_pid(box) == pid
        later = int(box.sh('systemctl show -P WatchdogTimestampMonotonic wca').stdout)
        assert later - pinged >= 2000000, (pinged, later)  # microseconds
    finally:
        box.sh('rm -rf /etc/systemd/system/wca.service.d && '
               'cp -p /root/wca_config.yml.good /etc/wca/wca_config.yml && '
               'systemctl daemon-reload && systemctl restart wca')


def unit_state(box):
    shown = box.sh('systemctl show -p ActiveState -p SubState -p Result -p ExecMainStatus '
                   '-p NRestarts wca').stdout.split()
    return dict(line.partition('=')[::2] for line in shown)


def journal(box):
    return box.sh('journalctl -u wca -o cat --no-pager').stdout


def test_a_broken_config_leaves_the_unit_failed_not_restarting(box):
    """Exit status 2 (a config error) is in RestartPreventExitStatus=: no restart every
    RestartSec= for ever, the unit is failed at once and the journal says why."""
    box.sh('cp -p /etc/wca/wca_config.yml /root/wca_config.yml.good')
    try:
        box.sh("printf 'runner: !MeasurementRunner\\n  interval: -1\\n' > /etc/wca/wca_config.yml")
        assert box.sh('systemctl restart wca', check=False).returncode != 0
        # Not activating/auto-restart, waiting for the next try: failed, for good.
        assert unit_state(box) == {'ActiveState': 'failed', 'SubState': 'failed',
                                   'Result': 'exit-code', 'ExecMainStatus': '2', 'NRestarts': '0'}
        wait_for(lambda: 'wca: error: /etc/wca/wca_config.yml:2: runner.interval: ' in journal(box),
                 'the error in the journal', timeout=10)
    finally:
        box.sh('cp -p /root/wca_config.yml.good /etc/wca/wca_config.yml && '
               'systemctl reset-failed wca && systemctl start wca')
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'


PLUGIN = """\
\"\"\"A plugin an operator drops in /etc/wca/plugins: the task ids it was given, to a file.\"\"\"
import os

from wca.storage import Storage


class TaskListStorage(Storage):
    def __init__(self, path: str):
        self.path = path

    def store(self, metrics):
        tasks = sorted(m.labels['task_id'] for m in metrics if m.name == 'task_cpu_usage_seconds')
        with open(self.path + '.tmp', 'w') as f:
            f.write('\\n'.join(tasks) + '\\n')
        os.replace(self.path + '.tmp', self.path)
"""
PLUGIN_CONFIG = """\
runner: !MeasurementRunner
  node: !CgroupDirectoryNode
    root: /
    max_depth: 2
  metrics_storage: !TaskListStorage
    path: /var/lib/wca/tasks.txt
"""


def test_a_plugin_in_the_plugin_directory_runs_under_systemd(box):
    """The launcher's python -E ignores PYTHONPATH: `-r module:Class` in WCA_ARGS finds the
    module in /etc/wca/plugins, which comes after the bundled packages (a yaml.py there
    changes nothing), and which is refused once others could write to it."""
    assert box.sh('stat -c %U:%G:%a /etc/wca/plugins').stdout.strip() == 'root:root:755'
    assert box.sh('ls -A /etc/wca/plugins').stdout == ''  # shipped empty
    box.sh('cp -p /etc/wca/wca_config.yml /root/wca_config.yml.good && '
           'cp -p /etc/sysconfig/wca /root/sysconfig.good')
    try:
        box.sh("cat > /etc/wca/plugins/wca_task_list.py <<'EOF'\n%sEOF" % PLUGIN)
        box.sh("echo 'raise ImportError(\"shadowed\")' > /etc/wca/plugins/yaml.py")
        box.sh("cat > /etc/wca/wca_config.yml <<'EOF'\n%sEOF" % PLUGIN_CONFIG)
        box.sh("sed -i 's/^WCA_ARGS=.*/WCA_ARGS=\"-r wca_task_list:TaskListStorage\"/' "
               "/etc/sysconfig/wca")
        box.sh('systemctl restart wca')
        assert box.sh('systemctl is-active wca').stdout.strip() == 'active'
        tasks = wait_for(lambda: box.sh('cat /var/lib/wca/tasks.txt', check=False).stdout,
                         'the plugin\'s output')
        assert 'system.slice/wca.service' in tasks.split(), tasks
        assert box.sh('stat -c %U /var/lib/wca/tasks.txt').stdout.strip() == 'wca'
        assert ('wca: warning: /etc/wca/plugins/yaml.py is not loaded by -r: its name is taken '
                'by /usr/lib64/wca/yaml/__init__.py; rename it') in journal(box)
        # Writable by the group: refused, one line, exit 2 (and the unit would not restart).
        box.sh('chmod g+w /etc/wca/plugins')
        refused = box.sh('runuser -u wca -- /usr/bin/wca --check-config -c /etc/wca/wca_config.yml',
                         check=False)
        assert refused.returncode == 2
        assert refused.stdout == (
            'wca: error: plugin directory /etc/wca/plugins refused: /etc/wca/plugins is writable '
            'by group or others (mode 0775): others could make the agent run their code; fix '
            'with: chmod go-w /etc/wca/plugins\n')
    finally:
        box.sh('chmod 0755 /etc/wca/plugins && rm -f /etc/wca/plugins/* /var/lib/wca/tasks.txt && '
               'cp -p /root/wca_config.yml.good /etc/wca/wca_config.yml && '
               'cp -p /root/sysconfig.good /etc/sysconfig/wca && systemctl restart wca')
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'


def test_upgrade_restarts_the_running_agent(box):
    old = main_pid(box)
    box.sh('rpm -U --replacepkgs --nodeps %s' % RPM)
    wait_for(lambda: box.sh('systemctl is-active wca', check=False).stdout.strip() == 'active',
             'the agent after the upgrade')
    assert main_pid(box) != old


def test_erase_stops_and_disables_and_keeps_edited_config(box):
    box.sh('echo "# edited by the operator" >> /etc/wca/wca_config.yml')
    assert box.sh('pgrep -u wca', check=False).stdout.split()
    box.sh('rpm -e wca')
    assert box.sh('pgrep -u wca', check=False).stdout.split() == []
    assert box.sh('systemctl is-active wca', check=False).stdout.strip() in ('inactive', 'unknown')
    links = box.sh('find /etc/systemd -name "wca.service*"').stdout.split()
    assert links == [], 'still enabled: %s' % links
    assert box.sh('test -e %s || test -e /usr/bin/wca || test -e /usr/lib64/wca' % UNIT,
                  check=False).returncode != 0
    saved = box.read('/etc/wca/wca_config.yml.rpmsave')
    assert saved.endswith('# edited by the operator\n')
    assert box.sh('test -e /etc/wca/wca_config.yml', check=False).returncode != 0
