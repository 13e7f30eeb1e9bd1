"""The node's memory hardware, read once at start (option `gather_hw_mm_topology`): DIMMs from
`dmidecode -t memory` (Debian and EL package `dmidecode`) and the size of persistent memory
used as volatile memory (Memory Mode) from Intel's `ipmctl`, where it is installed.

- platform_dimm_count{dimm_type} and platform_dimm_total_size_bytes{dimm_type}: populated
  DIMMs by type, `ram` or `nvm` (non-volatile: Intel Optane DC persistent memory and the like);
- platform_dimm_speed_bytes_per_second: the RAM DIMMs' configured speed (MT/s) times their
  data width, summed: the peak transfer rate (DIMMs sharing a channel share it, so this is an
  upper bound);
- platform_mem_mode_size_bytes: from `ipmctl show -u B -memoryresources`.

gather_hw_mm_topology unset: tried once, a missing tool or a failure is a warning. true: a
missing dmidecode is a config error, a failure a start error (exit 1). dmidecode reads
/sys/firmware/dmi/tables, which only root (or CAP_DAC_OVERRIDE, in the ambient set so that
the child process keeps it) may read. ipmctl is optional: only machines with persistent
memory have it.
"""
import logging
import os
import shutil
import subprocess
from typing import Dict, List, Optional  # noqa: F401 (type comments)

from wca.metrics import Measurements, MetricName
from wca.sources import PlatformSource

log = logging.getLogger(__name__)

INSTALL_HINT = 'install the dmidecode package (apt-get install dmidecode, or yum install dmidecode)'
_SBIN = '/usr/local/sbin:/usr/sbin:/sbin'  # where dmidecode lives, off an ordinary user's PATH
_TIMEOUT = 30
_UNITS = {'B': 1, 'BYTES': 1, 'KB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3, 'TB': 1024 ** 4,
          'KIB': 1024, 'MIB': 1024 ** 2, 'GIB': 1024 ** 3, 'TIB': 1024 ** 4}


class HardwareTopologyUnavailable(Exception):
    """gather_hw_mm_topology is true and the DIMMs cannot be read; the message says why. The
    runner reports it and exits 1 before the loop starts."""


def find_tool(name: str) -> Optional[str]:
    path = os.environ.get('PATH', os.defpath)
    return shutil.which(name, path=path + os.pathsep + _SBIN)


def _bytes(text: str) -> Optional[int]:
    """'16 GB' (dmidecode's GB are GiB), '16384 MB', '1024.000 GiB', '0 B' -> bytes."""
    words = text.split()
    if len(words) != 2 or words[1].upper() not in _UNITS:
        return None
    try:
        return int(float(words[0]) * _UNITS[words[1].upper()])
    except ValueError:
        return None


def _devices(text: str) -> List[Dict[str, str]]:
    """The `Memory Device` records (DMI type 17) of dmidecode's output, as field -> value."""
    devices, current = [], None  # type: List[Dict[str, str]], Optional[Dict[str, str]]
    for line in text.splitlines():
        if not line.strip():
            current = None
        elif not line[0].isspace():
            current = {} if line.strip() == 'Memory Device' else None
            if current is not None:
                devices.append(current)
        elif current is not None and line.startswith('\t') and not line.startswith('\t\t'):
            key, sep, value = line.strip().partition(':')
            if sep:
                current[key.strip()] = value.strip()
    return devices


def _dimm_type(device: Dict[str, str]) -> str:
    described = ' '.join(device.get(k, '') for k in ('Type', 'Type Detail', 'Memory Technology'))
    lowered = described.lower()
    if 'non-volatile' in lowered or 'persistent' in lowered or 'optane' in lowered:
        return 'nvm'
    return 'ram'


def parse_dmidecode(text: str) -> Measurements:
    """DIMM count, total size by type and the RAM DIMMs' peak transfer rate."""
    count = {'ram': 0, 'nvm': 0}
    size = {'ram': 0, 'nvm': 0}
    speed = 0
    for device in _devices(text):
        capacity = _bytes(device.get('Size', ''))
        if not capacity:  # 'No Module Installed', 'Not Installed', 'Unknown'
            continue
        kind = _dimm_type(device)
        count[kind] += 1
        size[kind] += capacity
        if kind == 'ram':
            rate = device.get('Configured Memory Speed') or device.get('Configured Clock Speed') \
                or device.get('Speed', '')
            width = device.get('Data Width', '64 bits').split()
            words = rate.split()
            if len(words) == 2 and words[0].isdigit() and words[1] in ('MT/s', 'MHz'):
                bits = int(width[0]) if width and width[0].isdigit() else 64
                speed += int(words[0]) * 1000000 * bits // 8
    return {MetricName.PLATFORM_DIMM_COUNT: count, MetricName.PLATFORM_DIMM_TOTAL_SIZE_BYTES: size,
            MetricName.PLATFORM_DIMM_SPEED_BYTES_PER_SECOND: speed}


def parse_ipmctl(text: str) -> Optional[int]:
    """Memory Mode size in bytes from `ipmctl show -u B -memoryresources`: the MemoryCapacity=
    line of ipmctl 1, or the Volatile row's PMem module column of ipmctl 2's table."""
    column = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith('MemoryCapacity='):
            return _bytes(stripped.partition('=')[2])
        cells = [cell.strip() for cell in stripped.split('|')]
        if len(cells) > 1 and cells[0] == 'MemoryType':
            for i, cell in enumerate(cells):
                if 'PMem' in cell or 'DCPMM' in cell or 'DCPMEM' in cell.upper():
                    column = i
        elif column is not None and cells[0] == 'Volatile' and len(cells) > column:
            return _bytes(cells[column])
    return None


def _run(argv: List[str]) -> str:
    """The command's standard output; OSError or CalledProcessError when it fails."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, close_fds=True)
    try:
        out, err = process.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise OSError('%s did not finish in %d seconds' % (argv[0], _TIMEOUT))
    if process.returncode != 0:
        message = err.decode('utf-8', 'replace').strip().splitlines() or out.decode(
            'utf-8', 'replace').strip().splitlines() or ['no output']
        raise subprocess.CalledProcessError(process.returncode, argv, message[-1])
    return out.decode('utf-8', 'replace')


def check(gather: Optional[bool], dmidecode: Optional[str] = None) -> None:
    """The config check: true needs dmidecode installed. ValueError('gather_hw_mm_topology: ')."""
    if gather and not (dmidecode or find_tool('dmidecode')):
        raise ValueError('gather_hw_mm_topology: dmidecode is not installed: %s, or leave '
                         'gather_hw_mm_topology out (it is then tried and skipped with a warning)'
                         % INSTALL_HINT)


def collect(gather: Optional[bool], dmidecode: Optional[str] = None,
            ipmctl: Optional[str] = None) -> Measurements:
    """The DIMM metrics, once (see the module's docstring); {} when off or not available and
    not required. HardwareTopologyUnavailable when required and not available."""
    if gather is False:
        return {}
    required = gather is True

    def unavailable(reason):
        if required:
            raise HardwareTopologyUnavailable(
                'gather_hw_mm_topology: %s; fix it, or leave gather_hw_mm_topology out' % reason)
        log.warning('no DIMM metrics (platform_dimm_*): %s (set gather_hw_mm_topology: false to '
                    'not try)', reason)
        return {}

    dmidecode = dmidecode or find_tool('dmidecode')
    if not dmidecode:
        return unavailable('dmidecode is not installed: ' + INSTALL_HINT)
    try:
        measurements = parse_dmidecode(_run([dmidecode, '-t', 'memory']))
    except subprocess.CalledProcessError as e:
        return unavailable('%s -t memory failed (exit %d): %s' % (dmidecode, e.returncode, e.output))
    except OSError as e:
        return unavailable('cannot run %s: %s' % (dmidecode, e.strerror or e))
    if not any(measurements[MetricName.PLATFORM_DIMM_COUNT].values()):
        return unavailable('%s -t memory lists no populated memory devices (a virtual machine?)'
                           % dmidecode)
    ipmctl = ipmctl or find_tool('ipmctl')
    if ipmctl:
        try:
            size = parse_ipmctl(_run([ipmctl, 'show', '-u', 'B', '-memoryresources']))
        except (OSError, subprocess.CalledProcessError) as e:
            log.warning('no platform_mem_mode_size_bytes: %s show -memoryresources failed: %s',
                        ipmctl, getattr(e, 'output', None) or e)
        else:
            if size is not None:
                measurements[MetricName.PLATFORM_MEM_MODE_SIZE_BYTES] = size
    else:
        log.info('ipmctl is not installed (a machine without persistent memory): no '
                 'platform_mem_mode_size_bytes')
    log.info('memory: %s', ', '.join('%d %s DIMMs' % (n, kind) for kind, n in sorted(
        measurements[MetricName.PLATFORM_DIMM_COUNT].items()) if n))
    return measurements


class HardwareTopologySource(PlatformSource):
    """Adds the DIMM metrics, read once at start, to every iteration's platform metrics."""

    def __init__(self, measurements: Measurements):
        self.measurements = measurements

    def collect(self, measurements: Measurements) -> None:
        for name, value in self.measurements.items():  # copies: algorithms may change theirs
            measurements[name] = dict(value) if isinstance(value, dict) else value
