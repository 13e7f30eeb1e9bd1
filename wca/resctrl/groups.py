"""resctrl groups the agent makes: their names, making and removing them, running out of
hardware ids, and the record of the agent's own groups.

A control group (a directory under the root) takes a CLOSID, a monitoring group (a directory
under a control group's mon_groups/) an RMID; the hardware has few of either (info/*/num_closids,
info/L3_MON/num_rmids), and mkdir fails with ENOSPC when they are all in use, or with EBUSY when
the free RMIDs are all still "in limbo" (recently freed, their cache lines not yet evicted).

Which groups are the agent's own, known without trusting any file of the agent's: each is made
with the sticky bit in its mode (mkdir with mode 01755: resctrl keeps the mode it is given, and
no other resctrl user sets that bit; a sticky directory whose entries only the kernel makes
changes nothing), so the names stay those the original agent gave them. The record file
(GroupRecord) lists them too, for groups whose mark a kernel did not keep. The next start removes
what is marked or recorded, and nothing else: groups of other tools, or an operator's, are never
touched, and a crash leaves nothing that later runs adopt as foreign (which would hold RMIDs for
good). Two agents on one resctrl mount are not supported (each would remove the other's groups
at its start).
"""
import errno
import logging
import os
import stat
from typing import Dict, List, Optional  # noqa: F401 (type comments)

from wca import fsutil
from wca.platforms import RDTInformation
from wca.resctrl.info import Resctrl

log = logging.getLogger(__name__)

OUT_OF_IDS = (errno.ENOSPC, errno.EBUSY)
BOOT_ID = '/proc/sys/kernel/random/boot_id'
MARK = stat.S_ISVTX  # in the mode of every group the agent makes
SPECIAL = ('info', 'mon_groups', 'mon_data')


class OutOfIds(Exception):
    """mkdir of a group failed because the hardware has no free RMID (monitoring group) or
    CLOSID (control group); the message names the limit."""

    def __init__(self, relative: str, error: OSError, limit: str):
        super().__init__(limit)
        self.relative = relative
        self.errno = error.errno


def group_name(cgroup_path: str) -> str:
    """The original agent's name for a task's group: the cgroup path without the leading '/',
    with '/' replaced by '-' (/kubepods/besteffort/pod<uid> -> kubepods-besteffort-pod<uid>)."""
    return cgroup_path.strip('/').replace('/', '-')


def valid_name(name: str) -> bool:
    """Whether resctrl (and the record file) can hold a group of this name."""
    return bool(name) and name not in ('.', '..') + SPECIAL \
        and '\n' not in name and len(name.encode('utf-8', 'surrogateescape')) <= 255


def monitoring_group(name: str, control_group: str = '') -> str:
    """The path, relative to the resctrl root, of monitoring group `name` of a control group
    ('' is the root group)."""
    return os.path.join(control_group, 'mon_groups', name)


def make_group(resctrl: Resctrl, relative: str, information: RDTInformation) -> bool:
    """Makes a group, marked as the agent's; True when made, False when it existed already.
    Raises OutOfIds when the hardware has no id for it, OSError for anything else."""
    try:
        resctrl.mkdir(relative, 0o755 | MARK)
        if not marked(resctrl, relative):  # a kernel that did not keep the mode: set it
            try:
                os.chmod(resctrl.path(relative), 0o755 | MARK)
            except OSError as e:
                log.debug('resctrl: cannot mark group %s: %s (it is in the record)', relative, e)
        return True
    except OSError as e:
        if e.errno == errno.EEXIST:
            return False
        if e.errno in OUT_OF_IDS:
            raise OutOfIds(relative, e, out_of_ids_message(
                e.errno, 'mon_groups' in relative.split('/'), information,
                resctrl.last_cmd_status()))
        raise


def marked(resctrl: Resctrl, relative: str) -> bool:
    """Whether a group carries the agent's mark (made by this agent, in this run or an earlier
    one); False when it does not exist."""
    try:
        return bool(os.stat(resctrl.path(relative)).st_mode & MARK)
    except OSError:
        return False


def marked_groups(resctrl: Resctrl) -> List[str]:
    """Every group carrying the agent's mark: control groups, and monitoring groups of any
    control group (the root group's, the agent's, others')."""
    found = []
    for name in [''] + listdir(resctrl.root):
        if name and (name in SPECIAL or not os.path.exists(resctrl.path(name, 'tasks'))):
            continue  # not a control group
        if name and marked(resctrl, name):
            found.append(name)
        monitoring = os.path.join(name, 'mon_groups')
        found.extend(os.path.join(monitoring, child) for child in listdir(resctrl.path(monitoring))
                     if marked(resctrl, os.path.join(monitoring, child)))
    return found


def listdir(path: str) -> List[str]:
    """A directory's entries, sorted; [] when it cannot be listed."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def remove_group(resctrl: Resctrl, relative: str) -> bool:
    """Removes a group; False when it was gone already."""
    try:
        resctrl.rmdir(relative)
        return True
    except OSError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def out_of_ids_message(error: int, monitoring: bool, information: RDTInformation,
                       status: str = '') -> str:
    """Why mkdir failed with ENOSPC or EBUSY, naming the limit."""
    said = ' (the kernel says: %s)' % status if status and status != 'ok' else ''
    if monitoring:
        count = '%d ' % information.num_rmids if information.num_rmids else ''
        if error == errno.EBUSY:
            return ('no free RMID yet: of the %sRMIDs the hardware has (info/L3_MON/num_rmids), '
                    'the free ones are all still in limbo (freed recently, their cache occupancy '
                    'above info/L3_MON/max_threshold_occupancy); they free up as the cache lines '
                    'are evicted%s' % (count, said))
        return ('out of RMIDs: all %smonitoring groups the hardware has (info/L3_MON/num_rmids) '
                'are in use%s' % (count, said))
    count = '%d ' % information.num_closids if information.num_closids else ''
    if error == errno.EBUSY:
        return ('no free CLOSID yet: of the %sCLOSIDs the hardware has, the free ones are still '
                'in use%s' % (count, said))
    return ('out of CLOSIDs: all %scontrol groups the hardware has (num_closids, the smaller of '
            'info/L3 and info/MB) are in use%s' % (count, said))


class GroupRecord:
    """The groups this agent made, in a file, so that the next start removes those an earlier
    run left behind (killed, crashed) and nothing else.

    Format: a header (`boot_id <id>`, `root <resctrl root>`), then `+<group>` appended when a
    group is made (before the mkdir) and `-<group>` when it is removed (after the rmdir), one
    write() each with O_APPEND, so a crash at any point leaves at most a group that does not
    exist listed. A record of another boot or another resctrl root is ignored: groups do not
    survive a reboot or a remount. Compacted at start and when it grows long.

    A missing directory is made (0755: /var/lib/wca exists only after a package install). A
    record that cannot be written is warned about once, naming the file and why, and shown by
    `writable` (wca_rdt_groups_record_writable 0); the agent goes on: its groups carry its mark,
    which is what the next start finds them by."""

    def __init__(self, path: Optional[str], root: str, boot_id_file: str = BOOT_ID):
        self.path = path
        self.root = root
        try:
            self.boot_id = fsutil.read_text(boot_id_file).strip()
        except OSError:
            self.boot_id = 'unknown'
        self.live = {}  # type: Dict[str, None]  groups made and not removed, in order
        self._lines = 0
        self.configured = path is not None  # rdt_groups_file: null turns the record off
        self.problem = None  # type: Optional[str]  why it cannot be written (warned once)

    @property
    def writable(self) -> bool:
        return self.problem is None

    def leftovers(self) -> List[str]:
        """The groups the record lists as made and not removed, by a run of this boot on this
        resctrl root."""
        if not self.path:
            return []
        try:
            text = fsutil.read_text(self.path)
        except FileNotFoundError:
            return []
        except OSError as e:
            self._disable('cannot read it: %s' % (e.strerror or e))
            return []
        header, groups = {}, {}  # type: Dict[str, str], Dict[str, None]
        for line in text.splitlines():
            if line[:1] == '+':
                groups[line[1:]] = None
            elif line[:1] == '-':
                groups.pop(line[1:], None)
            else:
                key, _, value = line.partition(' ')
                header[key] = value
        if header.get('boot_id') != self.boot_id or header.get('root') != self.root:
            return []
        return list(groups)

    def start(self, still_there: List[str]) -> None:
        """Writes a fresh record holding `still_there` (leftovers that could not be removed)."""
        self.live = dict.fromkeys(still_there)
        self._rewrite()

    def made(self, relative: str) -> None:
        """Call before the mkdir: a crash right after it must find the group listed."""
        self.live[relative] = None
        self._append('+' + relative)

    def removed(self, relative: str) -> None:
        self.live.pop(relative, None)
        self._append('-' + relative)
        if self._lines > 2 * len(self.live) + 1000:
            self._rewrite()

    def _append(self, line: str) -> None:
        if not self.path:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (line + '\n').encode('utf-8', 'surrogateescape'))
            finally:
                os.close(fd)
            self._lines += 1
        except OSError as e:
            self._disable('cannot write it: %s' % (e.strerror or e))

    def _rewrite(self) -> None:
        if not self.path:
            return
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            try:
                os.makedirs(directory, 0o755)
                log.info('resctrl: made %s for the record of the agent\'s groups', directory)
            except OSError as e:
                self._disable('cannot make its directory: %s' % (e.strerror or e))
                return
        lines = ['boot_id ' + self.boot_id, 'root ' + self.root] + ['+' + g for g in self.live]
        try:
            fsutil.write_atomically(self.path, ('\n'.join(lines) + '\n').encode(
                'utf-8', 'surrogateescape'), 0o644, fsync=False)
            self._lines = len(lines)
        except OSError as e:
            self._disable('cannot write it: %s' % (e.strerror or e))

    def _disable(self, reason: str) -> None:
        log.warning('resctrl groups record %s: %s; going on without it: the next start finds the '
                    'groups this run leaves behind by their mark only (set rdt_groups_file to a '
                    'writable file)', self.path, reason)
        self.problem = reason
        self.path = None


def start_record(path: Optional[str], resctrl: Resctrl) -> GroupRecord:
    """The record of this run, after removing the groups an earlier run left behind: those
    carrying the agent's mark, and those the record of this boot lists (monitoring groups before
    the control groups holding them)."""
    record = GroupRecord(path, resctrl.root)
    removed, kept = [], []
    leftovers = set(record.leftovers()).union(marked_groups(resctrl))
    for relative in sorted(leftovers, key=lambda g: (-g.count('/'), g)):
        try:
            if remove_group(resctrl, relative):
                removed.append(relative)
        except OSError as e:
            kept.append(relative)
            log.warning('resctrl: cannot remove group %s an earlier run left behind: %s',
                        relative, e.strerror or e)
    if removed:
        log.info('resctrl: removed %d group%s an earlier run left behind: %s', len(removed),
                 '' if len(removed) == 1 else 's', ', '.join(removed))
    record.start(kept)
    return record
