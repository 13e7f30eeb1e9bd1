"""Is resctrl mounted, and what the hardware offers: Platform.rdt_information from info/.

A two-socket server with cache and memory bandwidth allocation and monitoring has:

    info/L3/{cbm_mask,min_cbm_bits,num_closids,shareable_bits,bit_usage}
    info/MB/{bandwidth_gran,min_bandwidth,num_closids,delay_linear,thread_throttle_mode}
    info/L3_MON/{mon_features,num_rmids,max_threshold_occupancy}
    info/last_cmd_status                 why the last failed command failed
    schemata, tasks, cpus, cpus_list     the root (default) control group
    mon_data/mon_L3_00/, mon_L3_01/      one directory per L3 domain (socket)
    mon_groups/                          monitoring groups of the root group

(With CDP on, info/L3CODE and info/L3DATA replace info/L3.) The root path is injectable, and so
are mkdir and rmdir of groups: the kernel lays out a new group's files itself, which a plain
directory does not (tests/resctrl_tree.py overrides both to do what the kernel does).
"""
import logging
import os
from typing import List, Optional

from wca import fsutil
from wca.platforms import RDTInformation

log = logging.getLogger(__name__)

DEFAULT_ROOT = '/sys/fs/resctrl'
MONITORING_EVENTS = ('llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes')
MOUNT_HINT = ('mount it with: mount -t resctrl resctrl /sys/fs/resctrl (it needs a CPU with Intel '
              'RDT or AMD PQoS and a kernel built with CONFIG_X86_CPU_RESCTRL)')


class ResctrlUnavailable(Exception):
    """RDT was required (rdt_enabled: true) but cannot be used; the message says why and how to
    fix it. The runner reports it and exits 1 before the loop starts."""


def find_mount(mounts_file: str = '/proc/self/mounts') -> Optional[str]:
    """Where resctrl is mounted (the first resctrl line of the mount table), or None."""
    try:
        text = fsutil.read_text(mounts_file)
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == 'resctrl':
            return fields[1].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
    return None


class Resctrl:
    """One resctrl file system: where it is, and the two operations whose side effects only the
    kernel provides (a test tree overrides them)."""

    def __init__(self, root: str = DEFAULT_ROOT):
        self.root = root.rstrip('/') or '/'

    @classmethod
    def detect(cls, mounts_file: str = '/proc/self/mounts') -> Optional['Resctrl']:
        root = find_mount(mounts_file)
        return cls(root) if root else None

    def __repr__(self):
        return '%s(%r)' % (type(self).__name__, self.root)

    def path(self, *relative: str) -> str:
        return os.path.join(self.root, *relative)

    def mkdir(self, relative: str, mode: int = 0o777) -> None:
        """Makes a group: under the root a control group, under a mon_groups/ a monitoring
        group; the kernel fills it with its files (and fails with ENOSPC when it is out of
        CLOSIDs or RMIDs). The directory gets `mode` (less the umask), the sticky bit too."""
        os.mkdir(self.path(relative), mode)

    def rmdir(self, relative: str) -> None:
        """Removes a group with its files; its tasks go back to the parent group."""
        os.rmdir(self.path(relative))

    def last_cmd_status(self) -> str:
        """The kernel's reason for the last failed command ('ok' when none), or ''."""
        try:
            return fsutil.read_text(self.path('info', 'last_cmd_status')).strip()
        except OSError:
            return ''

    def has_monitoring(self) -> bool:
        return os.path.isdir(self.path('info', 'L3_MON'))

    def monitoring_domains(self, group: str = '') -> List[str]:
        """The L3 domains a group's mon_data has (mon_L3_00, mon_L3_01, ...), sorted."""
        try:
            names = os.listdir(self.path(group, 'mon_data'))
        except OSError:
            return []
        return sorted(n for n in names if n.startswith('mon_L3_'))

    def information(self) -> RDTInformation:
        """What info/ and the root schemata say; a file that is missing leaves its field unset."""
        l3 = self._first_directory('L3', 'L3DATA', 'L3CODE')
        features = tuple(_read_lines(self.path('info', 'L3_MON', 'mon_features')))
        if not features:  # older kernels without mon_features: what the root group has
            domains = self.monitoring_domains()
            if domains:
                features = tuple(e for e in MONITORING_EVENTS
                                 if os.path.exists(self.path('mon_data', domains[0], e)))
        schemata = [line.strip() for line in _read_lines(self.path('schemata'))]
        closids = [n for n in (_read_int(self.path('info', l3, 'num_closids')) if l3 else None,
                               _read_int(self.path('info', 'MB', 'num_closids')))
                   if n is not None]
        return RDTInformation(
            cbm_mask=_read_str(self.path('info', l3, 'cbm_mask')) if l3 else None,
            min_cbm_bits=_read_str(self.path('info', l3, 'min_cbm_bits')) if l3 else None,
            num_closids=min(closids) if closids else None,
            mb_bandwidth_gran=_read_int(self.path('info', 'MB', 'bandwidth_gran')),
            mb_min_bandwidth=_read_int(self.path('info', 'MB', 'min_bandwidth')),
            rdt_cache_monitoring_enabled='llc_occupancy' in features,
            rdt_cache_control_enabled=any(line.startswith('L3') for line in schemata),
            rdt_mb_monitoring_enabled='mbm_total_bytes' in features,
            rdt_mb_control_enabled=any(line.startswith('MB:') for line in schemata),
            mon_features=features,
            num_rmids=_read_int(self.path('info', 'L3_MON', 'num_rmids')),
        )

    def _first_directory(self, *names) -> Optional[str]:
        for name in names:
            if os.path.isdir(self.path('info', name)):
                return name
        return None


def resolve(enabled: Optional[bool], given: Optional[Resctrl],
            mounts_file: str = '/proc/self/mounts') -> Optional[Resctrl]:
    """The resctrl RDT uses: None when off (false), or absent and not required (unset);
    ResctrlUnavailable when required (true) and absent."""
    if enabled is False:
        return None
    resctrl = given or Resctrl.detect(mounts_file)
    if resctrl is None and enabled:
        raise ResctrlUnavailable('rdt_enabled is true, but resctrl is not mounted (no resctrl '
                                 'line in %s): %s; or leave rdt_enabled out (RDT when available)'
                                 ' or set it to false' % (mounts_file, MOUNT_HINT))
    return resctrl


def _read_str(path) -> Optional[str]:
    try:
        return fsutil.read_text(path).strip()
    except OSError:
        return None


def _read_int(path) -> Optional[int]:
    text = _read_str(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        log.warning('%s: expected a number, got %r', path, text)
        return None


def _read_lines(path) -> List[str]:
    text = _read_str(path)
    return [line for line in text.splitlines() if line.strip()] if text else []
