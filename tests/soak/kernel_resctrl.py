"""The soak's resctrl for the agent (registered with `-r kernel_resctrl:KernelShapedResctrl`):
this machine has no RDT, so the agent under soak is pointed at a directory laid out like
/sys/fs/resctrl (tests/resctrl_tree.py, built by the soak before the agent starts), whose mkdir
and rmdir do what the kernel's do. `resctrl:` is otherwise a Python-only option."""
from resctrl_tree import EVENTS, ResctrlTree
from wca.resctrl.info import Resctrl


class KernelShapedResctrl(ResctrlTree):
    """An existing ResctrlTree at `root` (the defaults of ResctrlTree's layout): not built
    again, only used."""

    def __init__(self, root: str):  # pylint: disable=super-init-not-called (no building)
        Resctrl.__init__(self, root)
        self.sockets, self.cpus, self.cbm_mask = 2, 16, '7ff'
        self.l3 = self.mb = self.monitoring = True
        self.mon_features = EVENTS
        self.domains = ['00', '01']
        self.mounts = []
