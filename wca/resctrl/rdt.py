"""RDT for a runner, set up once at start from `rdt_enabled`: unset means "when resctrl is
mounted", true means "required" (absent is an error at start), false means off.

What is kept here is shared by the RDT features: the resctrl handle, Platform.rdt_information,
the record of the agent's groups, the thread writer; monitoring is one feature (allocation,
control groups and schemata, is another that builds on the same RDT object).
"""
import logging
import os
from typing import Dict, List, Optional

from dataclasses import dataclass, field

from wca import security
from wca.cgroups.layout import CgroupLayout
from wca.platforms import RDTInformation
from wca.resctrl.groups import GroupRecord, start_record
from wca.resctrl.info import Resctrl, resolve
from wca.resctrl.monitoring import RDTMonitoring
from wca.resctrl.tasks import MissingPrivileges, TasksWriter
from wca.security import Privilege

log = logging.getLogger(__name__)

DEFAULT_RECORD = '/var/lib/wca/resctrl_groups'


@dataclass
class RDT:
    resctrl: Resctrl
    information: RDTInformation
    record: GroupRecord
    writer: Optional[TasksWriter]  # None: not root and without the privileges to move threads
    monitoring: Optional[RDTMonitoring]
    repairs: Dict[str, int] = field(default_factory=dict)  # wca_rdt_repairs_total{what}


def wanted(enabled: Optional[bool], given: Optional[Resctrl], mounts_file: str) -> bool:
    """Whether RDT monitoring will run, without touching anything (for the privilege check
    before start): required, or unset with a resctrl that can monitor."""
    if enabled is False:
        return False
    if enabled:
        return True
    resctrl = given or Resctrl.detect(mounts_file)
    return resctrl is not None and resctrl.has_monitoring()


def privileges() -> List[Privilege]:
    """What RDT monitoring needs when the agent is not root: making and removing groups in the
    root-owned resctrl directories, and effective uid 0 around each move of threads."""
    return [security.DAC_OVERRIDE, security.SETUID, security.NO_SETUID_FIXUP]


def start(enabled: Optional[bool], given: Optional[Resctrl], layout: CgroupLayout, errors,
          record_file: Optional[str], proc: str = '/proc') -> Optional[RDT]:
    """RDT for this run, or None (off, or not available and not required). Raises
    ResctrlUnavailable when required and it cannot be used."""
    resctrl = resolve(enabled, given, os.path.join(proc, 'self/mounts'))
    if resctrl is None:
        if enabled is None:
            log.info('RDT: resctrl is not mounted: no RDT metrics (%s)', _hint())
        return None
    information = resctrl.information()
    record = start_record(record_file, resctrl)
    try:
        writer = TasksWriter(proc)  # type: Optional[TasksWriter]
    except MissingPrivileges as e:
        if enabled:
            raise
        log.warning('RDT: no RDT metrics: %s', e)
        writer = None
    monitoring = None
    repairs = {}  # type: Dict[str, int]
    if writer is not None and information.mon_features:
        monitoring = RDTMonitoring(resctrl, information, layout, errors, record, writer, repairs)
    elif enabled and not information.mon_features:
        log.warning('RDT: resctrl at %s has no monitoring (no info/L3_MON): no RDT metrics',
                    resctrl.root)
    log.info('RDT: resctrl at %s; monitoring: %s; control: %s', resctrl.root,
             _monitoring_summary(information, resctrl) if monitoring else 'off',
             _control_summary(information))
    return RDT(resctrl, information, record, writer, monitoring, repairs)


def _monitoring_summary(information: RDTInformation, resctrl: Resctrl) -> str:
    domains = resctrl.monitoring_domains()
    return '%s (%s RMIDs, %d L3 domain%s)' % (
        ', '.join(information.mon_features), information.num_rmids or '?', len(domains),
        '' if len(domains) == 1 else 's')


def _control_summary(information: RDTInformation) -> str:
    parts = []
    if information.rdt_cache_control_enabled:
        parts.append('L3 (cbm_mask %s, min_cbm_bits %s)' % (information.cbm_mask,
                                                            information.min_cbm_bits))
    if information.rdt_mb_control_enabled:
        parts.append('MB (bandwidth_gran %s, min_bandwidth %s)' % (
            information.mb_bandwidth_gran, information.mb_min_bandwidth))
    if parts:
        parts.append('%s CLOSIDs' % information.num_closids)
    return ', '.join(parts) or 'none'


def _hint() -> str:
    return 'where the CPU has Intel RDT: mount -t resctrl resctrl /sys/fs/resctrl'
