"""Intel RDT (and AMD PQoS) through the resctrl file system.

info.py        is resctrl mounted, what the hardware offers (Platform.rdt_information);
               the Resctrl handle (root path, mkdir/rmdir of groups: a test tree overrides them)
groups.py      group names, making and removing groups, running out of RMIDs/CLOSIDs, and how
               the agent knows its own groups (their mark, its record; removed at its next start)
tasks.py       moving threads into a group: one id per write() to its `tasks` file, with
               effective uid 0 only around the write when the agent is not root; what to move
               worked out from the kernel each time (sync_threads), reused ids moved back out
monitoring.py  per task: a monitoring group under mon_groups/ and its mon_data metrics
schemata.py    schemata lines (L3 masks, MB) parsed and checked against info/
control.py     allocation: a control group per RDTAllocation name, its schemata, the tasks'
               threads moved in (an AllocationRunner's)
"""
