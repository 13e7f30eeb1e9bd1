"""Intel RDT allocation: resctrl control groups, their schemata, and tasks moved into them.

One control group per allocation name (RDTAllocation.name; the root group for '', the task id
made a valid name for None), made when a task is first given it and removed when no task of the
agent is left in it (only groups the agent made; they are listed in the record of the agent's
groups, so that a killed run's are removed at the next start). Per iteration a group's schemata
is written at most once, and only when a domain differs from what the kernel holds; a task's
threads are moved into its group (one id per write) when it changes group, and threads that
appear later every iteration before RDT monitoring writes them into the task's monitoring group,
which moves with the task (MonitoringGroup.move_to).

Checked before anything is written, against what the kernel says (info/, the root schemata):
the domain ids of each resource, the L3 mask (hexadecimal, not above info/L3/cbm_mask, one run of
contiguous bits, at least info/L3/min_cbm_bits of them), memory bandwidth (at least
info/MB/min_bandwidth, rounded up to info/MB/bandwidth_gran; the rounded value is the one written;
at most 100 unless resctrl counts MB in MBps), the number of CLOSIDs (the root group holds one),
and two tasks asking one group for different schemata. A write the kernel refuses is reported
with its own reason (info/last_cmd_status).

What the kernel holds is the truth, the agent's bookkeeping only says what it made: every
iteration each group is checked to exist, and its `tasks` file is read back every VERIFY_SECONDS
(tasks.py: the task's threads it does not list are moved back in); a group removed by someone
else puts its tasks back in the root group, where the kernel put them
(wca_rdt_repairs_total{what="control_group_removed"}, one warning): the next allocation naming
it makes it again and moves them in. A failure costs only that group's allocation, counted;
nothing of it reaches the runner as an exception.

At start the root group is reset: the full mask on every L3 domain and 100 % bandwidth, or the
AllocationConfiguration's default_rdt_l3 / default_rdt_mb; remove_all_resctrl_groups removes
every control and monitoring group first (other tools' too, as the original agent did).
"""
import errno
import logging
import os
from typing import Dict, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.allocations import (CONFLICT, KERNEL_REFUSED, OUT_OF_CLOSIDS, PERMISSION, UNSUPPORTED,
                             VANISHED, InvalidAllocation, digits, schemata_domains)
from wca.allocators import RDTAllocation
from wca.cgroups.layout import GONE, CgroupLayout, CgroupVanished
from wca.nodes.base import Task
from wca.resctrl.groups import (SPECIAL, OutOfIds, group_name, listdir, make_group, marked,
                                remove_group, valid_name)
from wca.resctrl.info import ResctrlUnavailable
from wca.resctrl.rdt import RDT
from wca.resctrl.schemata import check_l3, check_mb, domain_order, line_of, parse_schemata
from wca.resctrl.tasks import (Bookkeeping, MissingPrivileges, Verification, sync_threads,
                               thread_files)
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)

ROOT = ''


class Rejected(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Group:
    __slots__ = ('name', 'made', 'members', 'schemata')

    def __init__(self, name: str, made: bool):
        self.name = name
        self.made = made  # by this agent: removed when its last task leaves
        self.members = set()  # type: Set[str]  task ids
        self.schemata = {}  # type: Dict[str, Dict[str, str]]  as read this iteration


class RDTControl(Bookkeeping, TaskSourceFactory):
    """The control groups of the agent's tasks; a TaskSourceFactory whose per-task sources move
    new threads into the task's group every iteration (before RDT monitoring reads them)."""

    def __init__(self, rdt: RDT, layout: CgroupLayout, errors: Dict[str, int]):
        self.rdt = rdt
        self.resctrl = rdt.resctrl
        self.information = rdt.information
        self.layout = layout
        self.errors = errors
        self.repairs = rdt.repairs
        self.cache = bool(self.information.rdt_cache_control_enabled)
        self.mb = bool(self.information.rdt_mb_control_enabled)
        self.domains = {}  # type: Dict[str, List[str]]  resource -> domain ids (root schemata)
        self.percent = True  # MB in percent (not the mba_MBps mount option)
        self.groups = {ROOT: Group(ROOT, made=False)}  # type: Dict[str, Group]
        self.members = {}  # type: Dict[str, ControlMember]
        self._warned = set()  # type: Set[Tuple]

    # --- start ----------------------------------------------------------------------------

    def start(self, default_l3: Optional[str], default_mb: Optional[str], remove_all: bool,
              cache_required: bool, mb_required: bool, dry_run: bool = False) -> None:
        """Checks the required features, removes every group (remove_all), resets the root
        group (dry_run: only checks). Raises ResctrlUnavailable (the agent exits 1)."""
        if cache_required and not self.cache:
            raise ResctrlUnavailable('rdt_cache_control_required is true, but resctrl at %s has '
                                     'no L3 cache allocation (no L3 line in its schemata)'
                                     % self.resctrl.root)
        if mb_required and not self.mb:
            raise ResctrlUnavailable('rdt_mb_control_required is true, but resctrl at %s has no '
                                     'memory bandwidth allocation (no MB line in its schemata)'
                                     % self.resctrl.root)
        if remove_all and not dry_run:
            self._remove_all()
        root = self._read_schemata(ROOT)
        self.domains = {resource: sorted(domains, key=domain_order)
                        for resource, domains in root.items()}
        self.percent = all(int(v) <= 100 for v in root.get('MB', {}).values() if digits(v))
        lines = []
        try:
            if self.cache:
                lines.append(check_l3(default_l3, self.domains.get('L3', []), self.cbm_mask,
                                      self.min_cbm_bits) if default_l3 else
                             line_of('L3', {d: self.cbm_mask for d in self.domains.get('L3', [])}))
            if self.mb and (default_mb or self.percent):
                lines.append(self._check_mb(default_mb) if default_mb else
                             line_of('MB', {d: '100' for d in self.domains.get('MB', [])}))
        except InvalidAllocation as e:
            raise ResctrlUnavailable('cannot reset the root resctrl group: %s (default_rdt_l3 / '
                                     'default_rdt_mb of allocation_configuration)' % e)
        self.groups[ROOT].schemata = root
        lines = self._changed_lines(ROOT, lines) if lines else []
        if lines and not dry_run:
            try:
                self._write_schemata(ROOT, lines)
            except Rejected as e:
                raise ResctrlUnavailable('cannot reset the root resctrl group: %s' % e)
            log.info('RDT: root group reset to %s', ', '.join(lines))

    @property
    def cbm_mask(self) -> str:
        return self.information.cbm_mask or '0'

    @property
    def min_cbm_bits(self) -> int:
        try:
            return int(self.information.min_cbm_bits or 1)
        except ValueError:
            return 1

    def _check_mb(self, text: str) -> str:
        return check_mb(text, self.domains.get('MB', []), self.information.mb_min_bandwidth or 0,
                        self.information.mb_bandwidth_gran or 1, self.percent)

    def _remove_all(self):
        removed = []
        monitoring = self.resctrl.path('mon_groups')
        for name in listdir(monitoring):
            if os.path.isdir(os.path.join(monitoring, name)) and \
                    remove_group(self.resctrl, os.path.join('mon_groups', name)):
                removed.append('mon_groups/' + name)
        for name in listdir(self.resctrl.root):
            if name not in SPECIAL and os.path.exists(self.resctrl.path(name, 'tasks')) and \
                    remove_group(self.resctrl, name):
                removed.append(name)
        log.info('RDT: remove_all_resctrl_groups: removed %d group%s%s', len(removed),
                 '' if len(removed) == 1 else 's', (': ' + ', '.join(removed)) if removed else '')

    # --- checks ---------------------------------------------------------------------------

    def unavailable(self) -> Optional[Tuple[str, str]]:
        """(reason, message) when no RDT allocation can be applied on this host, else None."""
        if not (self.cache or self.mb):
            return UNSUPPORTED, ('resctrl at %s has no allocation (no L3 or MB line in its '
                                 'schemata)' % self.resctrl.root)
        if self.rdt.writer is None:
            return PERMISSION, ('the agent cannot move threads between resctrl groups (not root,'
                                ' and without CAP_SETUID and SecureBits=no-setuid-fixup)')
        return None

    def default_name(self, task_id: str) -> str:
        return group_name(task_id)

    def check(self, task_id: str, value: RDTAllocation) -> RDTAllocation:
        """The allocation with its group name resolved and its strings canonical (MB rounded);
        InvalidAllocation (with a reason) when it cannot be applied."""
        unavailable = self.unavailable()
        if unavailable:
            raise InvalidAllocation(unavailable[1], unavailable[0])
        name = value.name if value.name is not None else self.default_name(task_id)
        if not isinstance(name, str) or (name != ROOT and (not valid_name(name) or '/' in name)):
            raise InvalidAllocation('%r is not a valid resctrl group name' % (name,))
        l3 = mb = None
        if value.l3 is not None:
            if not self.cache:
                raise InvalidAllocation('resctrl at %s has no L3 cache allocation (no L3 line in '
                                        'its schemata)' % self.resctrl.root, UNSUPPORTED)
            l3 = check_l3(value.l3, self.domains.get('L3', []), self.cbm_mask, self.min_cbm_bits)
        if value.mb is not None:
            if not self.mb:
                raise InvalidAllocation('resctrl at %s has no memory bandwidth allocation (no MB '
                                        'line in its schemata)' % self.resctrl.root, UNSUPPORTED)
            mb = self._check_mb(value.mb)
        return RDTAllocation(name=name, l3=l3, mb=mb)

    # --- what the kernel holds ------------------------------------------------------------

    def current(self, task_ids) -> Dict[str, RDTAllocation]:
        """Each task's group and its schemata, read once per group this iteration."""
        if not (self.cache or self.mb):
            return {}
        for group in list(self.groups.values()):
            if group.name != ROOT and not os.path.isdir(self.resctrl.path(group.name)):
                self.vanished(group.name)
            elif group.members or group.name == ROOT:
                group.schemata = self._read_schemata(group.name)
        found = {}
        for task_id in task_ids:
            member = self.members.get(task_id)
            if member is None:
                continue
            if member.group not in self.groups:  # (never: vanished() moves its tasks to ROOT)
                self.vanished(member.group)
            schemata = self.groups[member.group].schemata
            found[task_id] = RDTAllocation(
                name=member.group,
                l3=line_of('L3', schemata['L3']) if self.cache and 'L3' in schemata else None,
                mb=line_of('MB', schemata['MB']) if self.mb and 'MB' in schemata else None)
        return found

    def _read_schemata(self, name: str) -> Dict[str, Dict[str, str]]:
        try:
            return parse_schemata(fsutil.read_text(self.resctrl.path(name, 'schemata')))
        except OSError:
            return {}

    # --- applying -------------------------------------------------------------------------

    def apply(self, allocations: Dict[str, RDTAllocation], dry_run: bool = False
              ) -> Tuple[Set[str], Dict[str, Rejected]]:
        """Applies checked allocations (from check()); returns (the tasks whose group or
        schemata was written, the rejected tasks with why). Each task is rejected alone."""
        rejected = {}  # type: Dict[str, Rejected]
        plan = self._plan(allocations, rejected)
        if dry_run:
            return set(), rejected
        written = set()  # type: Set[str]
        for name, (lines, tasks) in sorted(plan.items()):
            try:
                self._ensure_group(name)
                changed = self._changed_lines(name, lines)
                if changed:
                    self._write_schemata(name, changed)
            except Rejected as e:
                for task_id in tasks:
                    rejected[task_id] = e
                continue
            for task_id in tasks:
                member = self.members[task_id]
                try:
                    moved = member.group != name and self._move(member, name)
                except Rejected as e:
                    rejected[task_id] = e
                    continue
                if changed or moved:
                    written.add(task_id)
            if changed:
                log.debug('RDT: group %r schemata: %s', name, '; '.join(changed))
        self._remove_empty()
        return written, rejected

    def _plan(self, allocations, rejected) -> Dict[str, Tuple[List[str], List[str]]]:
        """group -> (the schemata lines asked for it, its tasks), the CLOSIDs and conflicts
        checked (in task id order: the first task to name a group sets its schemata)."""
        plan = {}  # type: Dict[str, Tuple[List[str], List[str]]]
        asked = {}  # type: Dict[Tuple[str, str], Tuple[str, str]]  (group, resource) -> line, task
        in_use = {member.group for task_id, member in self.members.items()
                  if task_id not in allocations} - {ROOT}
        limit = (self.information.num_closids - 1) if self.information.num_closids else None
        for task_id in sorted(allocations):
            value = allocations[task_id]
            name = value.name
            if task_id not in self.members:
                rejected[task_id] = Rejected(VANISHED, 'the task\'s threads cannot be found (its '
                                             'cgroup does not exist)')
                continue
            conflict = None
            for resource, line in (('L3', value.l3), ('MB', value.mb)):
                earlier = asked.get((name, resource))
                if line is not None and earlier is not None and earlier[0] != line:
                    conflict = 'group %r is given %s by task %s in this iteration, not %s' % (
                        name, earlier[0], earlier[1], line)
            if conflict:
                rejected[task_id] = Rejected(CONFLICT, conflict)
                continue
            if name != ROOT and name not in in_use and limit is not None and \
                    len(in_use) + 1 > limit:
                rejected[task_id] = Rejected(OUT_OF_CLOSIDS, 'group %r would be control group %d,'
                                             ' but the hardware has %d CLOSIDs (one is the root '
                                             'group\'s)' % (name, len(in_use) + 1,
                                                            self.information.num_closids))
                continue
            for resource, line in (('L3', value.l3), ('MB', value.mb)):
                if line is not None:
                    asked.setdefault((name, resource), (line, task_id))
            if name != ROOT:
                in_use.add(name)
            lines, tasks = plan.setdefault(name, ([], []))
            tasks.append(task_id)
            for line in (value.l3, value.mb):
                if line is not None and line not in lines:
                    lines.append(line)
        return plan

    def _ensure_group(self, name: str):
        group = self.groups.get(name)
        if group is not None and (name == ROOT or os.path.isdir(self.resctrl.path(name))):
            return
        if group is not None:  # removed behind the agent's back: its tasks are in ROOT now
            self.vanished(name)
        made = False
        if marked(self.resctrl, name):  # the agent's, left by an earlier run
            self.rdt.record.made(name)
            made = True
            log.info('RDT: control group %r (made by an earlier run of the agent) used', name)
        elif not os.path.isdir(self.resctrl.path(name)):
            self.rdt.record.made(name)
            try:
                made = make_group(self.resctrl, name, self.information)
            except OutOfIds as e:
                self.rdt.record.removed(name)
                raise Rejected(OUT_OF_CLOSIDS, 'cannot make resctrl group %r: %s' % (name, e))
            except OSError as e:
                self.rdt.record.removed(name)
                raise Rejected(_reason(e), 'cannot make resctrl group %r: %s%s' % (
                    name, e.strerror or e, self._said()))
            if not made:
                self.rdt.record.removed(name)
            else:
                log.info('RDT: made control group %r', name)
        else:
            log.info('RDT: control group %r exists, not made by this agent: used, and left in '
                     'place', name)
        group = Group(name, made)
        group.schemata = self._read_schemata(name)
        self.groups[name] = group

    def _changed_lines(self, name: str, lines: List[str]) -> List[str]:
        """The group's whole schemata with `lines` over what it holds, when a domain of them
        differs from what it holds; else []. The whole schemata is written (the kernel keeps
        what a write leaves out, a plain file does not: either way the result is the same)."""
        held = self.groups[name].schemata
        wanted = {resource: dict(domains) for resource, domains in held.items()}
        differs = False
        for line in lines:
            resource = line.partition(':')[0]
            current = held.get(resource, {})
            base = 16 if resource == 'L3' else 10
            for domain, value in schemata_domains(line).items():
                now = current.get(domain)
                try:
                    same = now is not None and int(now, base) == int(value, base)
                except ValueError:
                    same = False
                if not same:
                    differs = True
                wanted.setdefault(resource, {})[domain] = value
        if not differs:
            return []
        return [line_of(resource, domains) for resource, domains in sorted(wanted.items())]

    def _write_schemata(self, name: str, lines: List[str]):
        path = self.resctrl.path(name, 'schemata')
        data = ''.join(line + '\n' for line in lines).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, 'O_CLOEXEC', 0))
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            raise Rejected(_reason(e), 'writing %s to %s failed: %s%s' % (
                ' and '.join(lines), path, e.strerror or e, self._said()))
        held = self.groups[name].schemata if name in self.groups else {}
        for line in lines:
            held[line.partition(':')[0]] = schemata_domains(line)

    def _move(self, member: 'ControlMember', name: str) -> bool:
        """Moves all the task's threads into group `name`; its monitoring group follows."""
        tasks_file = self.resctrl.path(name, 'tasks')
        try:
            synced = self.sync(member, tasks_file)
        except CgroupVanished as e:
            raise Rejected(VANISHED, str(e))
        except MissingPrivileges as e:
            raise Rejected(PERMISSION, str(e))
        except OSError as e:
            raise Rejected(_reason(e), 'cannot write to %s: %s%s' % (tasks_file, e.strerror or e,
                                                                     self._said()))
        moved, failed = synced.moved, synced.failed
        if failed:
            tid, error = next(iter(failed.items()))
            if not moved:
                raise Rejected(_reason(error), 'moving thread %d into group %r failed: %s%s' % (
                    tid, name, error.strerror or error, self._said()))
            self.warn_once(('move', member.task_id, error.errno), 'RDT: task %s: %d of its '
                           'threads (%d first) not moved into group %r: %s', member.task_id,
                           len(failed), tid, name, error.strerror or error)
        old = self.groups.get(member.group)
        if old is not None:
            old.members.discard(member.task_id)
        self.groups[name].members.add(member.task_id)
        member.group = name
        member.written = synced.ids.difference(synced.gone).difference(failed)
        member.refused = set(failed)
        monitoring = self.rdt.monitoring
        if monitoring is not None:
            source = monitoring.groups.get(group_name(member.cgroup_path))
            if source is not None and source.task_id == member.task_id and \
                    source.control_group != name:
                source.move_to(name)
        return True

    def sync(self, member: 'ControlMember', tasks_file: str, known=None, refused=()):
        """tasks.sync_threads for a member (strangers go back to the root group), strangers
        counted and warned about."""
        synced = sync_threads(self.rdt.writer, member.thread_files, member.cgroup_path,
                              tasks_file, self.resctrl.path(ROOT, 'tasks'), known, refused)
        if synced.strangers:
            self.repaired('strangers_moved_out', len(synced.strangers))
            self.warn_once(('stranger', member.task_id), 'RDT: task %s: thread %d, moved into %s,'
                           ' is not the task\'s (its id was reused after a thread of the task '
                           'exited): moved back to the root group', member.task_id,
                           synced.strangers[0], tasks_file)
        return synced

    def vanished(self, name: str):
        """Group `name` was removed by someone else: the kernel put its tasks in the root
        group, and so does the agent's bookkeeping (an allocation naming the group makes it
        again and moves them back in). Counted; warned about once per group."""
        if name == ROOT:
            return
        group = self.groups.pop(name, None)
        self.repaired('control_group_removed')
        self.warn_once(('gone', name), 'RDT: control group %r was removed by someone else; its '
                       'tasks are in the root group until their allocation is applied again',
                       name)
        if group is not None and group.made:
            self.rdt.record.removed(name)
        root = self.groups[ROOT]
        for member in self.members.values():
            if member.group == name:
                member.group = ROOT
                member.written, member.refused = set(), set()
                root.members.add(member.task_id)

    def _remove_empty(self):
        for group in list(self.groups.values()):
            if group.name != ROOT and not group.members:
                self._forget_group(group)

    def _forget_group(self, group: Group):
        self.groups.pop(group.name, None)
        if not group.made:
            return
        try:
            remove_group(self.resctrl, group.name)
        except OSError as e:
            self.count_error()
            log.warning('RDT: cannot remove control group %r: %s%s', group.name, e.strerror or e,
                        self._said())
            return  # stays in the record: the next start tries again
        self.rdt.record.removed(group.name)
        log.info('RDT: removed control group %r (no task left in it)', group.name)

    def _said(self) -> str:
        status = self.resctrl.last_cmd_status()
        return ' (the kernel says: %s)' % status if status and status != 'ok' else ''

    # --- the task lifecycle ---------------------------------------------------------------

    def open(self, task: Task) -> 'ControlMember':
        member = ControlMember(self, task, thread_files(self.layout, task))
        self.members[task.task_id] = member
        self.groups[ROOT].members.add(task.task_id)
        return member

    def release(self, member: 'ControlMember'):
        if self.members.get(member.task_id) is member:
            del self.members[member.task_id]
        group = self.groups.get(member.group)
        if group is not None:
            group.members.discard(member.task_id)
            if group.name != ROOT and not group.members:
                self._forget_group(group)


class ControlMember(TaskSource):
    """One task in its control group: threads that appear later are moved in every
    iteration."""

    def __init__(self, control: RDTControl, task: Task, thread_files: List[str]):
        self.control = control
        self.task_id = task.task_id
        self.cgroup_path = task.cgroup_path
        self.thread_files = thread_files
        self.group = ROOT
        self.written = set()  # type: Set[int]  thread ids known to be in the group
        self.refused = set()  # type: Set[int]  thread ids the kernel would not move into it
        self.verification = Verification()

    @property
    def files(self) -> List[str]:
        return list(self.thread_files) if self.group != ROOT else []

    def measure(self, measurements) -> None:
        """The task's threads that its group does not list (new ones, or moved out by someone
        else) moved in; a group removed by someone else noticed (RDTControl.vanished)."""
        if self.group == ROOT:
            return
        c = self.control
        if not os.path.isdir(c.resctrl.path(self.group)):  # a stat: every iteration
            c.vanished(self.group)
            return
        tasks_file = c.resctrl.path(self.group, 'tasks')
        try:
            synced = c.sync(self, tasks_file,
                            None if self.verification.now() else self.written, self.refused)
        except MissingPrivileges as e:
            c.warn_once(('privileges',), 'RDT: cannot move threads into control groups: %s', e)
            return
        except OSError as e:
            if e.errno in GONE:  # the group was removed: its threads are in the root group now
                c.vanished(self.group)
                return
            c.count_error()
            c.warn_once(('write', self.task_id, e.errno), 'RDT: task %s: cannot write to %s: %s',
                        self.task_id, tasks_file, e.strerror or e)
            return
        moved_out = self.written.intersection(synced.moved)
        if moved_out:
            c.repaired('threads_moved_back', len(moved_out))
            log.info('RDT: task %s: %d of its threads (%d first) were moved out of group %r by '
                     'someone else; moved back', self.task_id, len(moved_out), min(moved_out),
                     self.group)
        if synced.failed:
            c.count_error()
            tid, error = next(iter(synced.failed.items()))
            c.warn_once(('move', self.task_id, error.errno), 'RDT: task %s: %d new threads (%d '
                        'first) not moved into group %r: %s%s', self.task_id, len(synced.failed),
                        tid, self.group, error.strerror or error, c._said())
        self.written = synced.ids.difference(synced.gone).difference(synced.failed)
        self.refused = self.refused.union(synced.failed).intersection(synced.ids)

    def close(self) -> None:
        self.control.release(self)


def _reason(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return PERMISSION
    if error.errno in GONE:
        return VANISHED
    return KERNEL_REFUSED
