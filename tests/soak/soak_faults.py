"""The soak's faults. Each is injected, held, undone where the world undoes it (a broker comes
back, a disk is emptied, a kubelet answers again), and then checked: did the agent come back to
the state it should be in (its groups, its settings, its metrics) within the recovery time?

FAULTS lists them in the order of docs/reliability.md.
"""
import os
import random
import shutil
import time

from soak_world import value
from wca.resctrl.tasks import VERIFY_SECONDS

FAULTS = (
    'resctrl_group_removed', 'resctrl_tasks_moved', 'cgroup_settings_reset',
    'kafka_broker_restart', 'kubelet_slow', 'kubelet_garbage', 'kubelet_500',
    'textfile_disk_full', 'cgroup_recreated',
)
CPU_SHARES_DEFAULT, CPU_QUOTA_DEFAULT = '1024', '-1'  # what the kernel gives a new v1 cgroup
GONE = 'gone'  # what a check answers when the churn took the fault's target away: no verdict
# Faults the agent finds only on a slower round than its iteration: a group's `tasks` file is
# read back once per VERIFY_SECONDS (listing it walks every thread of the machine).
RECOVERY_SECONDS = {'resctrl_tasks_moved': VERIFY_SECONDS + 5}


class Injector:
    """Runs one fault at a time: inject, hold `hold` seconds, undo, then wait up to `recover`
    seconds for the agent to be whole again. Counts, per fault: injected, skipped (nothing to
    inject into yet), recovered, not_recovered, gone (the churn removed the target first)."""

    def __init__(self, soak, hold, recover, seed):
        self.soak = soak
        self.hold, self.recover = hold, recover
        self.random = random.Random(seed)
        self.counts = {name: dict.fromkeys(('injected', 'skipped', 'recovered', 'not_recovered',
                                            GONE), 0) for name in FAULTS}
        self.log = []  # (seconds since start, fault, outcome, seconds to recover after undo)
        self.windows = {name: [] for name in FAULTS}  # (start, end) monotonic, while held

    def run_one(self, name):
        started = time.monotonic()
        self.soak.say('fault %s' % name)
        try:
            made = getattr(self, name)()
        except OSError as e:  # the world changed under the injector (the churn, the agent)
            self.soak.say('  %s: not injected: %s' % (name, e))
            made = None
        if made is None:
            self.counts[name]['skipped'] += 1
            return
        undo, check = made
        self.counts[name]['injected'] += 1
        time.sleep(self.hold)
        undo()
        self.windows[name].append((started, time.monotonic()))
        recover = max(self.recover, RECOVERY_SECONDS.get(name, 0))
        deadline = time.monotonic() + recover
        while True:
            verdict = check()
            if verdict:
                break
            if time.monotonic() > deadline:
                self._outcome(name, started, 'not_recovered')
                self.soak.say('  %s: not recovered within %.0f s' % (name, recover))
                return
            time.sleep(0.2)
        self._outcome(name, started, GONE if verdict == GONE else 'recovered')

    def _outcome(self, name, started, outcome):
        self.counts[name][outcome] += 1
        self.log.append((round(started - self.soak.started, 1), name, outcome, round(
            time.monotonic() - started - self.hold, 1)))

    def cycle(self):
        """The faults in a new random order."""
        order = list(FAULTS)
        self.random.shuffle(order)
        return order

    # --- resctrl ---------------------------------------------------------------------------

    def _groups(self):
        """{group: its tasks} of the non-root control groups and of every monitoring group."""
        tree = self.soak.tree
        found = {}
        controls = [d for d in os.listdir(tree.root) if os.path.exists(tree.path(d, 'schemata'))]
        for control in [''] + controls:
            relatives = [os.path.join(control, 'mon_groups', g) for g in tree.groups(control)]
            for relative in relatives + ([control] if control else []):
                try:
                    found[relative] = tree.tasks(relative)
                except OSError:  # removed meanwhile
                    pass
        return found

    def _placed(self, pids):
        """Whether every pid still alive is in a control group and a monitoring group again
        (as the allocator's rules say: each pod in control group 'soak', with its own
        monitoring group)."""
        alive = [p for p in pids if os.path.exists('/proc/%d' % p)]
        if not alive:
            return GONE
        controls, monitored = set(), set()
        for relative, tasks in self._groups().items():
            (monitored if '/mon_groups/' in '/' + relative else controls).update(tasks)
        return all(p in controls and p in monitored for p in alive)

    def _move_to_root(self, pids, *groups):
        """What the kernel does to tasks written to the root group's tasks file: they leave
        their control group and its monitoring group."""
        tree = self.soak.tree
        for relative in groups:
            try:
                left = [p for p in tree.tasks(relative) if p not in pids]
            except OSError:
                continue
            with open(tree.path(relative, 'tasks'), 'w') as f:
                f.write(''.join('%d\n' % p for p in left))
        with open(tree.path('tasks'), 'a') as f:
            f.write(''.join('%d\n' % p for p in pids))

    def _a_group(self):
        """A group holding a stable pod's threads (any group with tasks when there is none),
        as (group, its control group, the threads to move)."""
        stable = set(p for uid in self.soak.stable for p in self.soak.pods.pids(uid))
        groups = [(r, t) for r, t in self._groups().items() if t]
        preferred = [(r, [p for p in t if p in stable]) for r, t in groups if stable & set(t)]
        if not (preferred or groups):
            return None
        relative, pids = self.random.choice(preferred or groups)
        if '/mon_groups/' in '/' + relative:  # a monitoring group, of the root group or another
            return relative, ('/' + relative).split('/mon_groups/')[0].lstrip('/'), pids
        return relative, relative, pids

    def _a_pod(self, candidates):
        """One of `candidates` (pod uids), a stable one when there is one."""
        stable = [uid for uid in candidates if uid in self.soak.stable]
        return self.random.choice(stable or candidates) if candidates else None

    def resctrl_group_removed(self):
        """rmdir of a group the agent made, by hand: a task's monitoring group (its tasks stay in
        the control group), or every other time a control group with its monitoring groups (the
        kernel moves their tasks to the root group)."""
        chosen = self._a_group()
        if chosen is None:
            return None
        relative, control, pids = chosen
        if self.counts['resctrl_group_removed']['injected'] % 2 and control:  # not the root
            relative = control
            pids = sorted(set(p for r, ts in self._groups().items()
                              if r.split('/')[0] == control for p in ts))
        if relative == control:  # a control group's tasks go to the root group
            self._move_to_root(pids, control)
        # (a monitoring group's stay in its control group, whose tasks file lists them already)
        try:
            self.soak.tree.rmdir(relative)
        except FileNotFoundError:  # the agent removed it meanwhile (the tree's rmdir is not atomic)
            shutil.rmtree(self.soak.tree.path(relative), ignore_errors=True)
        return (lambda: None), (lambda: self._placed(pids))

    def resctrl_tasks_moved(self):
        """A group's tasks moved to the root group by someone else (echo pid > tasks)."""
        chosen = self._a_group()
        if chosen is None:
            return None
        relative, control, pids = chosen
        self._move_to_root(pids, control, relative)
        return (lambda: None), (lambda: self._placed(pids))

    # --- cgroup settings -------------------------------------------------------------------

    def cgroup_settings_reset(self):
        """A pod's cpu.shares and cpu.cfs_quota_us written back to the kernel's defaults (as
        a runtime update or a neighbour would)."""
        pods = self.soak.pods
        applied = []
        for uid in pods.uids():
            try:
                shares = _read(pods.cgroup_file(uid, 'cpu', 'cpu.shares'))
                quota = _read(pods.cgroup_file(uid, 'cpu', 'cpu.cfs_quota_us'))
            except OSError:
                continue
            if shares != CPU_SHARES_DEFAULT and quota != CPU_QUOTA_DEFAULT:
                applied.append((uid, shares, quota))
        if not applied:
            return None
        uid = self._a_pod([a[0] for a in applied])
        shares, quota = next((a[1], a[2]) for a in applied if a[0] == uid)
        try:
            _write(pods.cgroup_file(uid, 'cpu', 'cpu.shares'), CPU_SHARES_DEFAULT)
            _write(pods.cgroup_file(uid, 'cpu', 'cpu.cfs_quota_us'), CPU_QUOTA_DEFAULT)
        except OSError:  # the pod went meanwhile
            return None

        def restored():
            try:
                return (_read(pods.cgroup_file(uid, 'cpu', 'cpu.shares')) == shares and
                        _read(pods.cgroup_file(uid, 'cpu', 'cpu.cfs_quota_us')) == quota)
            except OSError:
                return GONE if uid not in pods.uids() else False
        return (lambda: None), restored

    # --- Kafka -----------------------------------------------------------------------------

    def kafka_broker_restart(self):
        """The broker stopped (SIGINT) and started again on the same port, empty. What it held
        is read first, right after a store, so that only the agent can lose a message."""
        soak = self.soak
        soak.drain_kafka(then=soak.broker.stop)

        def check():
            samples = soak.textfile.latest
            return value(samples, 'wca_kafka_up') == 1 and \
                value(samples, 'wca_kafka_queue_messages') == 0
        return soak.broker.start, check

    # --- the kubelet -----------------------------------------------------------------------

    def _kubelet(self, mode):
        soak = self.soak
        soak.kubelet.mode = mode
        before = soak.textfile.stores

        def undo():
            soak.kubelet.mode = 'ok'

        def check():  # a store after the kubelet answered again, with every pod
            samples = soak.textfile.latest
            return soak.textfile.stores > before + 1 and \
                value(samples, 'wca_tasks') == len(soak.pods.uids())
        return undo, check

    def kubelet_slow(self):
        """Headers sent only after 3x the node's timeout."""
        return self._kubelet('slow')

    def kubelet_garbage(self):
        """200 with truncated JSON, an HTML page, or a PodList with items that are not pods."""
        return self._kubelet('garbage')

    def kubelet_500(self):
        return self._kubelet('500')

    # --- the textfile ----------------------------------------------------------------------

    def textfile_disk_full(self):
        """The textfile's file system full (ENOSPC), then emptied."""
        soak = self.soak
        soak.disk.fill()
        before = soak.textfile.stores

        def check():
            return soak.textfile.stores > before
        return soak.disk.empty, check

    # --- cgroups ---------------------------------------------------------------------------

    def cgroup_recreated(self):
        """A pod's cgroups removed and made again under the same names (a new process): the
        agent's held descriptors of the old ones answer ENODEV."""
        soak = self.soak
        uid = self._a_pod(soak.pods.uids())
        if uid is None:
            return None
        if not soak.pods.recreate(uid):
            return None
        before = soak.textfile.stores

        def check():  # measured again, and its allocation written to the new cgroup
            if uid not in soak.pods.uids():
                return GONE
            try:
                shares = _read(soak.pods.cgroup_file(uid, 'cpu', 'cpu.shares'))
            except OSError:
                return False
            return soak.textfile.stores > before + 1 and shares != CPU_SHARES_DEFAULT and \
                value(soak.textfile.latest, 'task_up', task_id=uid) == 1
        return (lambda: None), check


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
