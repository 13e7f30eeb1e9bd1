"""Each allocation setting's files on cgroup v1 and v2: what a task is given now (read for
TaskData.allocations)."""
from wca.cgroups.measure import single

# What a task is given now (for TaskData.allocations), raw as the kernel has it; see
# wca.allocations.current_allocations for the contract's units.
QUOTA_US, PERIOD_US, SHARES = 'cpu_quota_us', 'cpu_period_us', 'cpu_shares_v1'


def _text(key):
    def parse(data, m):
        m[key] = data.decode().strip()
    return parse


def _v2_cpu_max(data, m):
    """'max 100000' or '50000 100000'; unlimited is -1 as in v1's cpu.cfs_quota_us."""
    quota, period = data.split()
    m[QUOTA_US] = -1 if quota == b'max' else int(quota)
    m[PERIOD_US] = int(period)


def _v2_cpu_weight(data, m):
    """cpu.weight as v1 shares: the scheduler weight is shares, or weight * 1024 / 100 (so the
    defaults, 1024 shares and weight 100, are equal)."""
    m[SHARES] = int(data) * 1024 // 100


ALLOCATION_SOURCES = [
    ('quota', 'cpu', 'cpu.cfs_quota_us', single(QUOTA_US)),
    ('quota', 'v2:cpu', 'cpu.max', _v2_cpu_max),
    ('period', 'cpu', 'cpu.cfs_period_us', single(PERIOD_US)),
    ('shares', 'cpu', 'cpu.shares', single(SHARES)),
    ('shares', 'v2:cpu', 'cpu.weight', _v2_cpu_weight),
    ('cpuset_cpus', 'cpuset', 'cpuset.cpus', _text('cpuset_cpus')),
    ('cpuset_cpus', 'v2:cpuset', 'cpuset.cpus.effective', _text('cpuset_cpus')),
    ('cpuset_mems', 'cpuset', 'cpuset.mems', _text('cpuset_mems')),
    ('cpuset_mems', 'v2:cpuset', 'cpuset.mems.effective', _text('cpuset_mems')),
    ('memory_migrate', 'cpuset', 'cpuset.memory_migrate', single('cpuset_memory_migrate')),
]
