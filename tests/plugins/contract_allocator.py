"""An allocator written against the plugin contract only (shared/plugin-api.md).

For the first task (sorted by id) it returns valid allocations; for the second, invalid ones
(a negative quota, an unknown allocation type, a CPU the platform does not have); and one for
a task that does not exist. The agent must store the valid ones and log and count the rest.
"""
from wca.allocators import Allocator, AllocationType, RDTAllocation
from wca.config import register
from wca.detectors import TasksData
from wca.metrics import Metric
from wca.platforms import Platform


@register
class ContractAllocator(Allocator):
    def allocate(self, platform: Platform, tasks_data: TasksData):
        ids = sorted(tasks_data)
        allocations = {}
        if ids:
            allocations[ids[0]] = {
                AllocationType.QUOTA: 0.5,
                AllocationType.SHARES: 2,
                'cpuset_cpus': '0',  # plain strings are AllocationType values too
                AllocationType.RDT: RDTAllocation(name='be', l3='L3:0=f'),
            }
        if len(ids) >= 2:
            allocations[ids[1]] = {
                AllocationType.QUOTA: -1,
                'no_such_allocation': 1,
                AllocationType.CPUSET_CPUS: '%d' % (platform.cpus + 100),
            }
        allocations['no-such-task'] = {AllocationType.QUOTA: 1.0}
        return allocations, [], [Metric(name='contract_allocator_calls', value=1)]
