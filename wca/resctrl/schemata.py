"""resctrl schemata lines: parsed, and checked against what the hardware offers (info/).

    L3:0=7ff;1=7ff      a cache bit mask per L3 domain (hexadecimal; the kernel pads it with
                        zeros to the width of info/L3/cbm_mask)
    MB:0=100;1=100      memory bandwidth per domain: percent, or MBps with mba_MBps

Pure functions: wca.resctrl.control applies them to control groups.
"""
import math
from typing import Dict, List

from wca.allocations import InvalidAllocation, digits, schemata_domains


def parse_schemata(text: str) -> Dict[str, Dict[str, str]]:
    """A group's schemata file: {'L3': {'0': '7ff', '1': '7ff'}, 'MB': {'0': '100', ...}}."""
    resources = {}
    for line in text.splitlines():
        if ':' not in line:
            continue
        try:
            domains = schemata_domains(line)
        except InvalidAllocation:
            continue
        resources[line.strip().partition(':')[0].strip()] = domains
    return resources


def line_of(resource: str, domains: Dict[str, str]) -> str:
    return '%s:%s' % (resource, ';'.join('%s=%s' % (d, domains[d])
                                         for d in sorted(domains, key=domain_order)))


def domain_order(domain: str):
    return (0, int(domain)) if digits(domain) else (1, domain)


def check_l3(text: str, domains: List[str], cbm_mask: str, min_cbm_bits: int) -> str:
    """The L3 string checked and written canonically ('L3:0=ff;1=f00'); InvalidAllocation."""
    if not isinstance(text, str) or not text.strip().startswith('L3:'):
        raise InvalidAllocation('l3 must start with "L3:" (like "L3:0=fffff;1=fffff"), got %r'
                                % (text,))
    full = int(cbm_mask, 16)
    masks = {}
    for domain, mask in schemata_domains(text).items():
        check_domain(domain, domains, 'L3', text)
        try:
            bits = int(mask, 16)
        except ValueError:
            raise InvalidAllocation('L3 mask %r of domain %s is not hexadecimal' % (mask, domain))
        if bits & ~full:
            raise InvalidAllocation('L3 mask %s of domain %s is bigger than cbm_mask %s'
                                    % (mask, domain, cbm_mask))
        ones = bin(bits).count('1')
        if bits == 0 or '0' in bin(bits)[2:].strip('0'):
            raise InvalidAllocation('L3 mask %s of domain %s: its bits must be contiguous (one run'
                                    ' of ones)' % (mask, domain))
        if ones < min_cbm_bits:
            raise InvalidAllocation('L3 mask %s of domain %s has %d bit%s, fewer than min_cbm_bits'
                                    ' %d' % (mask, domain, ones, '' if ones == 1 else 's',
                                             min_cbm_bits))
        masks[domain] = '%x' % bits
    return line_of('L3', masks)


def check_mb(text: str, domains: List[str], min_bandwidth: int, granularity: int,
             percent: bool = True) -> str:
    """The MB string checked, each value rounded up to the granularity ('MB:0=50;1=100')."""
    if not isinstance(text, str) or not text.strip().startswith('MB:'):
        raise InvalidAllocation('mb must start with "MB:" (like "MB:0=50;1=100"), got %r'
                                % (text,))
    values = {}
    for domain, value in schemata_domains(text).items():
        check_domain(domain, domains, 'MB', text)
        if not digits(value):
            raise InvalidAllocation('MB value %r of domain %s is not a whole number'
                                    % (value, domain))
        bandwidth = int(value)
        if bandwidth < min_bandwidth:
            raise InvalidAllocation('MB value %d of domain %s is below min_bandwidth %d'
                                    % (bandwidth, domain, min_bandwidth))
        if granularity > 1:
            bandwidth = int(math.ceil(bandwidth / granularity)) * granularity
        if percent and bandwidth > 100:
            raise InvalidAllocation('MB value %s of domain %s is above 100 (percent)'
                                    % (value, domain))
        values[domain] = str(bandwidth)
    return line_of('MB', values)


def check_domain(domain: str, domains: List[str], resource: str, text: str):
    if not digits(domain):
        raise InvalidAllocation('%s domain id %r is not a number (in %r)'
                                % (resource, domain, text))
    if domains and domain not in domains and str(int(domain)) not in domains:
        raise InvalidAllocation('%s domain id %s out of range: this platform has %s' % (
            resource, domain, ', '.join(domains)))
