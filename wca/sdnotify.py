"""systemd's notify protocol (Type=notify, WatchdogSec=) without a dependency."""
import os
import socket
from typing import Optional


def notify(state: str) -> bool:
    """Sends e.g. 'READY=1' or 'WATCHDOG=1' to $NOTIFY_SOCKET; False when not under systemd
    or when the socket cannot be reached (never raises: a lost notification must not stop
    the agent)."""
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return False
    if address.startswith('@'):  # abstract namespace
        address = '\0' + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_period() -> Optional[float]:
    """Seconds between two WATCHDOG=1 pings, half of $WATCHDOG_USEC as sd_watchdog_enabled(3)
    advises, when systemd's watchdog is on for this process; None when it is off.

    It is off when $WATCHDOG_USEC is unset, not a positive integer, or when $WATCHDOG_PID is
    set to another process (the variables were inherited by a child of the service)."""
    usec = os.environ.get('WATCHDOG_USEC')
    if not usec:
        return None
    pid = os.environ.get('WATCHDOG_PID')
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec_value = int(usec)
    except ValueError:
        return None
    if usec_value <= 0:
        return None
    return usec_value / 2e6
