"""systemd's notify protocol (Type=notify, WatchdogSec=) without a dependency."""
import os
import socket


def notify(state: str) -> bool:
    """Sends e.g. 'READY=1' or 'WATCHDOG=1' to $NOTIFY_SOCKET; False when not under systemd."""
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
