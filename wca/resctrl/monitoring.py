"""Intel RDT monitoring per task: last level cache occupancy and memory bandwidth.

When a task appears, a monitoring group is made for it, mon_groups/<name>, named as the original
agent named it (the cgroup path without the leading '/', '/' replaced by '-'). Every iteration:

- the task's threads are read from its cgroup's `tasks` file (cgroup v1; `cgroup.threads` on
  cgroup v2; for a pod also each container's), and those the group's own `tasks` file does not
  hold are written into the group, one id per write() (tasks.sync_threads). Threads started
  later by a thread of the group inherit the group, so after the first iteration there is
  usually nothing to write; a thread that exited meanwhile (ESRCH) is normal; one that someone
  moved out is moved back when the group is next read back (every VERIFY_SECONDS; counted in
  wca_rdt_repairs_total{what="threads_moved_back"}).
- mon_data/mon_L3_*/{llc_occupancy,mbm_local_bytes,mbm_total_bytes} are read and summed over the
  L3 domains. A domain answering `Unavailable` (or `Error`) leaves that metric out for the
  iteration (counted in wca_rdt_unavailable_readings_total), never a partial sum.

The group is removed the moment the task goes. One removed by someone else is made again at
the next measurement (wca_rdt_repairs_total{what="monitoring_group_removed"}), under the root
group when its control group went with it. A group found existing when a task appears is the
agent's when it carries its mark (groups.py: left by an earlier run), else someone else's: used
and left in place. When the hardware is out of RMIDs (mkdir fails
with ENOSPC, or EBUSY while freed ones are in limbo) the task has no RDT metrics until one frees
up: one warning naming the limit, the mkdir retried every iteration, the agent goes on
(wca_rdt_tasks_waiting counts those tasks).

Extension point for RDT allocation: MonitoringGroup.control_group is the control group the
monitoring group lives under ('' = the root group); move_to() re-makes the group under another.
"""
import logging
import os
from typing import Dict, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.cgroups.layout import GONE, CgroupLayout
from wca.metrics import Measurements, MetricName
from wca.nodes.base import Task
from wca.platforms import RDTInformation
from wca.resctrl.groups import (GroupRecord, OutOfIds, group_name, make_group, marked,
                                monitoring_group, remove_group, valid_name)
from wca.resctrl.info import Resctrl
from wca.resctrl.tasks import (Bookkeeping, MissingPrivileges, TasksWriter, Verification,
                               sync_threads, thread_files)
from wca.sources import PlatformSource, TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)

# mon_data file -> metric; mbm_local_bytes is read before mbm_total_bytes, so that the total
# (read later, and counting the local traffic too) is never below it.
EVENTS = (('llc_occupancy', MetricName.TASK_LLC_OCCUPANCY_BYTES),
          ('mbm_local_bytes', MetricName.TASK_MEM_BANDWIDTH_LOCAL_BYTES),
          ('mbm_total_bytes', MetricName.TASK_MEM_BANDWIDTH_BYTES))
UNAVAILABLE = (b'Unavailable', b'Error')


class RDTMonitoring(Bookkeeping, TaskSourceFactory):
    """Opens a MonitoringGroup for each new task; keeps what the groups share: names in use,
    the tasks waiting for an RMID, the count of unavailable readings."""

    def __init__(self, resctrl: Resctrl, information: RDTInformation, layout: CgroupLayout,
                 errors: Dict[str, int], record: GroupRecord, writer: TasksWriter,
                 repairs: Optional[Dict[str, int]] = None):
        self.resctrl = resctrl
        self.information = information
        self.layout = layout
        self.errors = errors
        self.repairs = {} if repairs is None else repairs
        self.record = record
        self.writer = writer
        self.events = [(event, name) for event, name in EVENTS
                       if event in information.mon_features]
        self.groups = {}  # type: Dict[str, MonitoringGroup]  group name -> its source
        self.waiting = set()  # type: Set[str]  names of the groups waiting for an RMID
        self.unavailable = 0
        self._out_of_ids = None  # type: Optional[str]  the warning given while out of ids
        self._warned = set()  # type: Set[Tuple]
        self._status = None  # type: Optional[RDTMonitoringStatus]

    def open(self, task: Task) -> Optional['MonitoringGroup']:
        name = group_name(task.cgroup_path)
        if not valid_name(name):
            self.warn_once(('name', task.task_id), 'task %s: no RDT metrics: its cgroup %s gives no '
                           'valid resctrl group name (%r)', task.task_id, task.cgroup_path, name)
            return None
        source = MonitoringGroup(self, task, name, thread_files(self.layout, task))
        if self.claim(source):
            source.attach()
            self.publish()
            return source
        holder = self.groups[name]
        if holder.cgroup_path == task.cgroup_path:  # relaunched: the task it replaces goes next
            log.debug('resctrl: task %s: cgroup %s is still that of task %s; its monitoring '
                      'group follows when that task goes', task.task_id, task.cgroup_path,
                      holder.task_id)
        else:
            self.warn_once(('taken', task.task_id), 'task %s: no RDT metrics while task %s runs:'
                           ' its monitoring group %s is that task\'s (cgroup paths that differ '
                           'only in "/" and "-")', task.task_id, holder.task_id, name)
        return source

    def claim(self, source: 'MonitoringGroup') -> bool:
        """Gives a task its group's name, unless another task holds it (then tried again at
        each measurement: a relaunched task is opened before the one it replaces is closed)."""
        return self.groups.setdefault(source.name, source) is source

    def status(self) -> 'RDTMonitoringStatus':
        if self._status is None:
            self._status = RDTMonitoringStatus(self)
        return self._status

    def publish(self):
        """The gauges as they are now, into this iteration's platform measurements (collected
        before the tasks are measured, stored after)."""
        if self._status is not None:
            self._status.publish()

    # --- shared bookkeeping ------------------------------------------------------------

    def out_of_ids(self, source: 'MonitoringGroup', error: OutOfIds):
        self.waiting.add(source.name)
        if self._out_of_ids is None:
            self._out_of_ids = str(error)
            log.warning('resctrl: %s: task %s has no RDT metrics until one frees up (tried again '
                        'every iteration; so are tasks that come meanwhile)', error, source.task_id)
        else:
            log.debug('resctrl: task %s waits for an RMID: %s', source.task_id, error)

    def attached(self, source: 'MonitoringGroup'):
        if source.name in self.waiting:
            self.waiting.discard(source.name)
            log.info('resctrl: task %s has its monitoring group now', source.task_id)
            self._check_recovered()

    def release(self, source: 'MonitoringGroup'):
        if self.groups.get(source.name) is source:
            del self.groups[source.name]
            self.waiting.discard(source.name)
            self._check_recovered()
        self.publish()

    def _check_recovered(self):
        if self._out_of_ids is not None and not self.waiting:
            self._out_of_ids = None
            log.info('resctrl: every task has its monitoring group again')


class MonitoringGroup(Bookkeeping, TaskSource):
    """One task's monitoring group: its threads written in, its counters read."""

    def __init__(self, factory: RDTMonitoring, task: Task, name: str, thread_files: List[str]):
        self.factory = factory
        self.task_id = task.task_id
        self.cgroup_path = task.cgroup_path
        self.name = name
        self.control_group = ''
        self.relative = monitoring_group(name)
        self.thread_files = thread_files
        self.active = False  # the group exists and is ours to use
        self.made = False  # this agent made it: removed on close (else left as found)
        self.recorded = False  # listed in the record of the agent's groups
        self.gave_up = False
        self.written = set()  # type: Set[int]  thread ids known to be in the group
        self.refused = set()  # type: Set[int]  thread ids the kernel would not move into it
        self.verification = Verification()
        self._reads = []  # type: List[Tuple[str, List[str]]]  metric -> its file per domain
        self._warned = set()  # type: Set[Tuple]

    @property
    def files(self) -> List[str]:
        return self.thread_files + [path for _, paths in self._reads for path in paths]

    def attach(self) -> bool:
        """Makes (or, when it exists and is not the agent's, adopts) the group; False while
        there is no RMID for it or after a failure that retrying cannot fix."""
        f = self.factory
        if self.control_group and not os.path.isdir(f.resctrl.path(self.control_group)):
            self.control_group = ''  # removed by someone else, with this group: in the root group
            self.relative = monitoring_group(self.name)
            self.recorded = False
        if not self.recorded:
            if marked(f.resctrl, self.relative):  # the agent's, from an earlier run
                f.record.made(self.relative)
                self.recorded = True
                return self._activate(made=True)
            if os.path.isdir(f.resctrl.path(self.relative)):
                log.info('resctrl: monitoring group %s exists, not made by this agent: used for '
                         'task %s and left in place when it goes', self.relative, self.task_id)
                return self._activate(made=False)
            f.record.made(self.relative)  # before the mkdir: a crash must find it listed
            self.recorded = True
        try:
            made = make_group(f.resctrl, self.relative, f.information)
        except OutOfIds as e:
            f.out_of_ids(self, e)
            return False
        except OSError as e:
            self._forget()
            self.gave_up = True
            f.count_error()
            f.warn_once(('mkdir', e.errno), 'resctrl: cannot make monitoring group %s for task %s:'
                        ' %s%s; no RDT metrics for it', self.relative, self.task_id,
                        e.strerror or e, _said(f.resctrl))
            return False
        if not made:  # made by someone else between the check and the mkdir
            self._forget()
        return self._activate(made)

    def _activate(self, made: bool) -> bool:
        self.active, self.made = True, made
        self.written, self.refused = set(), set()
        domains = self.factory.resctrl.monitoring_domains(self.relative)
        path = self.factory.resctrl.path
        self._reads = [(name, [path(self.relative, 'mon_data', d, event) for d in domains])
                       for event, name in self.factory.events]
        self.factory.attached(self)
        return True

    def _forget(self):
        if self.recorded:
            self.factory.record.removed(self.relative)
            self.recorded = False

    def measure(self, measurements: Measurements) -> None:
        try:
            if self.factory.groups.get(self.name) is not self and not self.factory.claim(self):
                return  # another task holds the name, until it goes
            if not self.active and (self.gave_up or not self.attach()):
                return
            if self._move_threads():
                self._read(measurements)
        finally:
            self.factory.publish()

    def _move_threads(self) -> bool:
        f = self.factory
        tasks_file = f.resctrl.path(self.relative, 'tasks')
        try:
            synced = sync_threads(f.writer, self.thread_files, self.cgroup_path, tasks_file,
                                  f.resctrl.path(self.control_group, 'tasks'),
                                  None if self.verification.now() else self.written, self.refused)
        except MissingPrivileges as e:
            f.count_error()
            f.warn_once(('privileges',), 'resctrl: cannot move threads into monitoring groups: %s',
                        e)
            return True
        except OSError as e:
            if e.errno in GONE:
                return self._vanished()
            f.count_error()
            self.warn_once(('write', e.errno), 'resctrl: task %s: cannot write to %s: %s',
                           self.task_id, tasks_file, e.strerror or e)
            return True
        for path, error in synced.unreadable:
            self._failure(path, error.strerror or str(error))
        moved_out = self.written.intersection(synced.moved)
        if moved_out:
            f.repaired('threads_moved_back', len(moved_out))
            log.info('resctrl: task %s: %d of its threads (%d first) were moved out of %s by '
                     'someone else; moved back', self.task_id, len(moved_out), min(moved_out),
                     self.relative)
        if synced.strangers:
            f.repaired('strangers_moved_out', len(synced.strangers))
            f.warn_once(('stranger', self.task_id), 'resctrl: task %s: thread %d, moved into %s,'
                        ' is not the task\'s (its id was reused after a thread of the task '
                        'exited): moved back to %s', self.task_id, synced.strangers[0],
                        self.relative, self.control_group or 'the root group')
        failed, gone = synced.failed, synced.gone
        if failed:
            f.errors['measurement'] = f.errors.get('measurement', 0) + len(failed)
            tid, error = next(iter(failed.items()))
            self.warn_once(('move', error.errno), 'resctrl: task %s: cannot move %d of its '
                           'threads (thread %d first) into %s: %s%s; they are not measured',
                           self.task_id, len(failed), tid, self.relative,
                           error.strerror or error, _said(f.resctrl))
        self.written = synced.ids.difference(gone).difference(failed)
        self.refused = self.refused.union(failed).intersection(synced.ids)
        return True

    def _read(self, measurements: Measurements):
        values = {}
        read = fsutil.read_bytes
        for name, paths in self._reads:
            total = 0
            for path in paths:
                try:
                    data = read(path)
                except OSError as e:
                    if e.errno in GONE:
                        self._vanished()
                        return
                    self._failure(path, e.strerror or str(e))
                    break
                try:
                    total += int(data)
                except ValueError:
                    if data.strip() in UNAVAILABLE:
                        self.factory.unavailable += 1
                    else:
                        self._failure(path, 'cannot parse %r' % data[:40])
                    break
            else:
                values[name] = total
        measurements.update(values)
        local = values.get(MetricName.TASK_MEM_BANDWIDTH_LOCAL_BYTES)
        every = values.get(MetricName.TASK_MEM_BANDWIDTH_BYTES)
        if local is not None and every is not None:
            measurements[MetricName.TASK_MEM_BANDWIDTH_REMOTE_BYTES] = max(0, every - local)

    def _vanished(self) -> bool:
        """The group, or one of its L3 domains, is gone: made again (or its domains listed
        again) next iteration."""
        f = self.factory
        if os.path.isdir(f.resctrl.path(self.relative)):
            log.info('resctrl: the L3 domains of %s changed (a socket went offline?): %s',
                     self.relative, ', '.join(f.resctrl.monitoring_domains(self.relative)))
            self._activate(self.made)
            return False
        f.count_error()
        f.repaired('monitoring_group_removed')
        log.warning('resctrl: monitoring group %s of task %s was removed by someone else; made '
                    'again', self.relative, self.task_id)
        self.active = False
        if not self.made:
            self.recorded = False
        return False

    def _failure(self, path, reason):
        self.factory.count_error()
        self.warn_once(('read', path), 'cannot read %s: %s (its metrics are dropped)', path, reason)

    def move_to(self, control_group: str) -> bool:
        """Re-makes the group under another control group ('' = the root group); for RDT
        allocation, after the task's threads were moved into that control group."""
        self._remove()
        self.recorded = False  # (what could not be removed stays in the record)
        self.control_group = control_group
        self.relative = monitoring_group(self.name, control_group)
        return self.attach()

    def close(self) -> None:
        self._remove()
        self.factory.release(self)

    def _remove(self):
        f = self.factory
        if self.active and self.made:
            try:
                remove_group(f.resctrl, self.relative)
            except OSError as e:
                f.count_error()
                log.warning('resctrl: cannot remove monitoring group %s of task %s: %s%s',
                            self.relative, self.task_id, e.strerror or e, _said(f.resctrl))
                self.active = False
                return  # stays recorded: the next start tries again
        self.active = False
        self._forget()
        if f.groups.get(self.name) is self:
            f.waiting.discard(self.name)


class RDTMonitoringStatus(PlatformSource):
    """The monitoring groups' own metrics, as of this iteration: collected with the platform's,
    before the tasks are measured, and kept up to date in the same measurements as the tasks'
    groups are made, measured and removed (RDTMonitoring.publish), until they are stored."""

    def __init__(self, monitoring: RDTMonitoring):
        self.monitoring = monitoring
        self._measurements = None  # type: Optional[Measurements]  this iteration's

    def collect(self, measurements: Measurements) -> None:
        self._measurements = measurements
        self.publish()

    def publish(self) -> None:
        measurements, m = self._measurements, self.monitoring
        if measurements is None:
            return
        measurements[MetricName.WCA_RDT_MONITORING_GROUPS] = sum(
            1 for source in m.groups.values() if source.active)
        measurements[MetricName.WCA_RDT_TASKS_WAITING] = len(m.waiting)
        measurements[MetricName.WCA_RDT_UNAVAILABLE_READINGS] = m.unavailable
        publish_repairs(measurements, m.record, m.repairs)


def publish_repairs(measurements: Measurements, record: GroupRecord, repairs: Dict[str, int]):
    """What the agent set right after someone else changed it, and whether its record of the
    groups it made can be written: exported with or without monitoring."""
    if record.configured:
        measurements[MetricName.WCA_RDT_GROUPS_RECORD_WRITABLE] = int(record.writable)
    for what, count in repairs.items():
        measurements.setdefault(MetricName.WCA_RDT_REPAIRS, {})[what] = count


class RDTControlStatus(PlatformSource):
    """wca_rdt_repairs_total and wca_rdt_groups_record_writable on a resctrl the agent only
    allocates on (no monitoring): repairs made by the allocation step show an iteration later."""

    def __init__(self, record: GroupRecord, repairs: Dict[str, int]):
        self.record = record
        self.repairs = repairs

    def collect(self, measurements: Measurements) -> None:
        publish_repairs(measurements, self.record, self.repairs)


def _said(resctrl: Resctrl) -> str:
    status = resctrl.last_cmd_status()
    return ' (the kernel says: %s)' % status if status and status != 'ok' else ''
