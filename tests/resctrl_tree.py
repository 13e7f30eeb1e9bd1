"""A directory laid out exactly like /sys/fs/resctrl on a two-socket server, for tests: this
machine has no RDT. A helper module, not a test module (RDT monitoring and allocation tests
share it).

ResctrlTree(root) builds, under `root`:

    info/last_cmd_status
    info/L3/{bit_usage,cbm_mask,min_cbm_bits,num_closids,shareable_bits,sparse_masks}
    info/MB/{bandwidth_gran,delay_linear,min_bandwidth,num_closids,thread_throttle_mode}
    info/L3_MON/{max_threshold_occupancy,mon_features,num_rmids}
    cpus, cpus_list, mode, schemata, size, tasks          the root (default) control group
    mon_data/mon_L3_00/{llc_occupancy,mbm_local_bytes,mbm_total_bytes}, mon_L3_01/...
    mon_groups/

with the kernel's file contents and modes (root-owned; 0644 where the kernel lets root write,
0444 elsewhere). It is a wca.resctrl.info.Resctrl whose mkdir and rmdir do what the kernel does
on resctrl: mkdir directly under the root makes a control group (cpus, cpus_list, mode, schemata
with the default masks, size, tasks, mon_data/, mon_groups/), under a mon_groups/ a monitoring
group (cpus, cpus_list, tasks, mon_data/), either with the mode given (the sticky bit too, less
the umask), as resctrl keeps it; anywhere else EPERM. rmdir removes a group with its files. Both
keep info/last_cmd_status as the kernel does.

The mkdir itself is real: limit_groups() mounts a tmpfs with just enough inodes for N more
groups over mon_groups/ (or builds on one, for control groups), so the next mkdir fails with
ENOSPC exactly as a kernel out of RMIDs (CLOSIDs) does, and succeeds again once a group is
removed. Needs root for the mount; cleanup() unmounts.

A group's `tasks` file is a regular file: ids written to it (one per line with a trailing
newline, as the agent writes them) accumulate, and tasks(group) reads them back. Counters are
set with set_counters().
"""
import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import List, Optional, Sequence, Union

from wca.resctrl.info import Resctrl

EVENTS = ('llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes')  # the kernel's order


class ResctrlTree(Resctrl):
    def __init__(self, root: str, sockets: int = 2, cpus: int = 16, cbm_mask: str = '7ff',
                 min_cbm_bits: int = 1, l3_closids: int = 16, mb_closids: int = 8,
                 num_rmids: int = 176, mon_features: Sequence[str] = EVENTS,
                 l3: bool = True, mb: bool = True, monitoring: bool = True,
                 on_tmpfs_inodes: Optional[int] = None):
        """`on_tmpfs_inodes`: build on a tmpfs (mounted at `root`) with that many inodes more
        than the tree needs, for control group limits."""
        super().__init__(root)
        self.sockets = sockets
        self.cpus = cpus
        self.cbm_mask = cbm_mask
        self.l3 = l3
        self.mb = mb
        self.monitoring = monitoring
        self.mon_features = tuple(mon_features) if monitoring else ()
        self.domains = ['%02d' % d for d in range(sockets)]
        self.mounts = []  # type: List[str]
        try:
            self._build(min_cbm_bits, l3_closids, mb_closids, num_rmids, on_tmpfs_inodes)
        except BaseException:
            self.cleanup()
            raise

    def _build(self, min_cbm_bits, l3_closids, mb_closids, num_rmids, on_tmpfs_inodes):
        os.makedirs(self.root, exist_ok=True)
        if on_tmpfs_inodes is not None:
            self._mount_tmpfs(self.root, 1000000)
        self._write('info/last_cmd_status', 'ok', 0o444)
        if self.l3:
            self._write('info/L3/cbm_mask', self.cbm_mask, 0o444)
            self._write('info/L3/min_cbm_bits', str(min_cbm_bits), 0o444)
            self._write('info/L3/num_closids', str(l3_closids), 0o444)
            self._write('info/L3/shareable_bits', '0', 0o444)
            self._write('info/L3/sparse_masks', '0', 0o444)
            ways = bin(int(self.cbm_mask, 16)).count('1')
            self._write('info/L3/bit_usage', ';'.join('%d=%s' % (d, 'S' * ways)
                                                      for d in range(self.sockets)), 0o444)
        if self.mb:
            self._write('info/MB/bandwidth_gran', '10', 0o444)
            self._write('info/MB/delay_linear', '1', 0o444)
            self._write('info/MB/min_bandwidth', '10', 0o444)
            self._write('info/MB/num_closids', str(mb_closids), 0o444)
            self._write('info/MB/thread_throttle_mode', 'max', 0o444)
        if self.monitoring:
            self._write('info/L3_MON/max_threshold_occupancy', '1441792', 0o444)
            self._write('info/L3_MON/mon_features', '\n'.join(self.mon_features), 0o444)
            self._write('info/L3_MON/num_rmids', str(num_rmids), 0o444)
        self._control_group_files('', root_group=True)
        if on_tmpfs_inodes is not None:
            self._limit(self.root, self.used_inodes(self.root) + on_tmpfs_inodes)

    # --- what the kernel does ---------------------------------------------------------------

    def mkdir(self, relative: str, mode: int = 0o777) -> None:
        parent = os.path.dirname(relative.strip('/'))
        self._status('ok')
        if parent == '':
            kind = 'control'
        elif os.path.basename(parent) == 'mon_groups' and self.monitoring and (
                os.path.dirname(parent) == '' or self._is_control_group(os.path.dirname(parent))):
            kind = 'monitoring'
        else:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), self.path(relative))
        try:
            # real: ENOSPC on a full tmpfs, EEXIST; the mode as resctrl keeps it (umask applied)
            os.mkdir(self.path(relative), mode & 0o1777)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                self._status('Out of RMIDs' if kind == 'monitoring' else 'Out of CLOSIDs')
            raise
        try:
            if kind == 'control':
                self._control_group_files(relative)
            else:
                self._monitoring_group_files(relative)
        except OSError as e:  # the kernel makes a group whole or not at all
            shutil.rmtree(self.path(relative), ignore_errors=True)
            if e.errno == errno.ENOSPC:
                self._status('Out of RMIDs' if kind == 'monitoring' else 'Out of CLOSIDs')
            raise

    def rmdir(self, relative: str) -> None:
        path = self.path(relative)
        self._status('ok')
        parent = os.path.dirname(relative.strip('/'))
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if not (parent == '' or os.path.basename(parent) == 'mon_groups') or \
                os.path.basename(relative) in ('info', 'mon_groups', 'mon_data'):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
        shutil.rmtree(path)

    # --- for the tests -----------------------------------------------------------------------

    def set_counters(self, group: str = '', domain: Union[int, str] = 0,
                     **values: Union[int, str]) -> None:
        """Sets llc_occupancy / mbm_total_bytes / mbm_local_bytes of one L3 domain of a group
        (a number, or 'Unavailable' / 'Error' as the kernel answers when it cannot count)."""
        for event, value in values.items():
            assert event in EVENTS, event
            self._write(os.path.join(group, 'mon_data', 'mon_L3_%02d' % int(domain), event),
                        str(value), 0o444)

    def tasks(self, group: str) -> List[int]:
        with open(self.path(group, 'tasks')) as f:
            return [int(line) for line in f.read().split()]

    def groups(self, control_group: str = '') -> List[str]:
        try:
            return sorted(os.listdir(self.path(control_group, 'mon_groups')))
        except FileNotFoundError:
            return []

    def limit_groups(self, count: int, where: str = 'mon_groups') -> None:
        """Lets only `count` more groups be made in `where` (an empty mon_groups/): a tmpfs with
        just that many groups' inodes is mounted over it."""
        path = self.path(where)
        assert not os.listdir(path), 'limit_groups needs an empty directory'
        self._mount_tmpfs(path, 1 + count * self.group_inodes('monitoring'))

    def group_inodes(self, kind: str = 'monitoring') -> int:
        """Inodes one group takes: the directory, its files, mon_data/ with a directory and the
        event files per domain (and mon_groups/ for a control group)."""
        per_domain = 1 + len(self.mon_features)
        files = 3 if kind == 'monitoring' else 6  # cpus cpus_list tasks (+ mode schemata size)
        mon = (1 + len(self.domains) * per_domain) if self.monitoring else 0
        return 1 + files + mon + (1 if kind == 'control' and self.monitoring else 0)

    @staticmethod
    def used_inodes(path: str) -> int:
        st = os.statvfs(path)
        return st.f_files - st.f_ffree

    def cleanup(self) -> None:
        for mount in reversed(self.mounts):
            subprocess.call(['umount', '-l', mount])
        self.mounts = []

    # --- building ----------------------------------------------------------------------------

    def _control_group_files(self, relative: str, root_group: bool = False):
        all_cpus = '%x' % ((1 << self.cpus) - 1)
        self._write(os.path.join(relative, 'cpus'), all_cpus if root_group else '0' * len(all_cpus))
        self._write(os.path.join(relative, 'cpus_list'),
                    '0-%d' % (self.cpus - 1) if root_group else '')
        self._write(os.path.join(relative, 'mode'), 'shareable')
        schemata, size = [], []
        domains = ';'.join('%d=%s' % (d, self.cbm_mask) for d in range(self.sockets))
        if self.l3:
            schemata.append('L3:' + domains)
            size.append('L3:' + ';'.join('%d=%d' % (d, 25952256) for d in range(self.sockets)))
        if self.mb:
            mb = 'MB:' + ';'.join('%d=100' % d for d in range(self.sockets))
            schemata.append(mb)
            size.append(mb)
        self._write(os.path.join(relative, 'schemata'), '\n'.join(schemata))
        self._write(os.path.join(relative, 'size'), '\n'.join(size), 0o444)
        self._write(os.path.join(relative, 'tasks'), '1' if root_group else '')
        if self.monitoring:
            self._mon_data(relative)
            os.mkdir(self.path(relative, 'mon_groups'), 0o755)

    def _monitoring_group_files(self, relative: str):
        self._write(os.path.join(relative, 'cpus'), '0' * len('%x' % ((1 << self.cpus) - 1)))
        self._write(os.path.join(relative, 'cpus_list'), '')
        self._write(os.path.join(relative, 'tasks'), '')
        self._mon_data(relative)

    def _mon_data(self, relative: str):
        for domain in self.domains:
            for event in self.mon_features:
                self._write(os.path.join(relative, 'mon_data', 'mon_L3_' + domain, event), '0',
                            0o444)

    def _is_control_group(self, relative: str) -> bool:
        return os.path.dirname(relative) == '' and os.path.exists(self.path(relative, 'schemata'))

    def _status(self, text: str):
        self._write('info/last_cmd_status', text, 0o444)

    def _write(self, relative: str, text: str, mode: int = 0o644):
        path = self.path(relative)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if os.path.exists(path):
            os.chmod(path, 0o644)
        with open(path, 'w') as f:
            f.write(text + '\n' if text else '')
        os.chmod(path, mode)

    def _mount_tmpfs(self, path: str, inodes: int):
        subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=755,nr_inodes=%d'
                               % inodes, 'wca-test-resctrl', path])
        self.mounts.append(path)

    def _limit(self, path: str, inodes: int):
        subprocess.check_call(['mount', '-o', 'remount,nr_inodes=%d' % inodes, path])


@contextmanager
def resctrl_tree(root: str, **options):
    """A ResctrlTree at `root`, its mounts undone afterwards, also after a failure."""
    tree = ResctrlTree(root, **options)
    try:
        yield tree
    finally:
        tree.cleanup()
