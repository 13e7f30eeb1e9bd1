"""The `SSL` component: how the agent talks TLS to an outside system (kubelet, apiserver, Mesos,
Kafka, the HTTP endpoint). One place decides verification, client certificates and the minimum
protocol version (TLS 1.2), so every client behaves the same."""
import os
import ssl
from typing import Dict, Optional, Tuple, Union  # noqa: F401 (type comments)

from dataclasses import dataclass


@dataclass
class SSL:
    """TLS settings of a client (or server) connection.

    server_verify: true (check the peer against the system CA store), false (do not check it:
        for tests only), or the path of a CA bundle (PEM) to check the peer against.
    client_cert_path: a PEM certificate presented to the server (client-certificate
        authentication); may hold the key too.
    client_key_path: the PEM private key of client_cert_path, when it is a separate file.
    """
    server_verify: Union[bool, str] = True
    client_cert_path: Optional[str] = None
    client_key_path: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.server_verify, str):
            if not self.server_verify:
                raise ValueError('server_verify: expected true, false or a CA bundle path')
            if not os.path.exists(self.server_verify):
                raise ValueError('server_verify: CA bundle %r does not exist' % self.server_verify)
            if not os.path.isdir(self.server_verify):  # a directory: OpenSSL's hashed layout
                try:
                    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
                        cafile=self.server_verify)
                except (ssl.SSLError, OSError) as e:
                    raise ValueError('server_verify: %r is not a PEM CA bundle (%s)' % (
                        self.server_verify, getattr(e, 'strerror', None) or 'no certificate'))
        elif not isinstance(self.server_verify, bool):
            raise ValueError('server_verify: expected true, false or a CA bundle path')
        if self.client_key_path and not self.client_cert_path:
            raise ValueError('client_key_path: a client key needs client_cert_path too')
        for key in ('client_cert_path', 'client_key_path'):
            path = getattr(self, key)
            if path is not None and (not isinstance(path, str) or not os.path.exists(path)):
                # The path names a file, not the key itself, so it may be shown.
                raise ValueError('%s: %r does not exist' % (key, path))
        if self.client_cert_path:
            # Loaded once now, so a wrong pair is a config error rather than a TLS failure
            # every iteration, and an encrypted key fails instead of prompting on a terminal.
            asked = []  # the password callback's calls (raising in it breaks Python 3.6)
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                    self.client_cert_path, self.client_key_path,
                    password=lambda: asked.append(1) or b'')
            except (ssl.SSLError, OSError) as e:
                raise ValueError('%s: cannot use the client certificate and key: %s' % (
                    'client_key_path' if self.client_key_path else 'client_cert_path',
                    'the key is encrypted (give an unencrypted key, readable by the agent '
                    'only)' if asked else _load_problem(e)))

    def requests_kwargs(self) -> Dict[str, object]:
        """Keyword arguments for `requests` (`verify` and `cert`)."""
        cert = None  # type: Union[None, str, Tuple[str, str]]
        if self.client_cert_path:
            cert = ((self.client_cert_path, self.client_key_path) if self.client_key_path
                    else self.client_cert_path)
        return {'verify': self.server_verify, 'cert': cert}

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext for a client connection: TLS 1.2 or newer, verification as configured."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        set_minimum_tls12(context)
        if self.server_verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.server_verify is True:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            context.load_verify_locations(cafile=self.server_verify)
        if self.client_cert_path:
            context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context


def _load_problem(error: Exception) -> str:
    if isinstance(error, ssl.SSLError):
        if getattr(error, 'reason', None) == 'KEY_VALUES_MISMATCH':
            return 'the key does not belong to the certificate'
        return 'not a PEM certificate with its key (in the same file, or in client_key_path)'
    return getattr(error, 'strerror', None) or type(error).__name__


def set_minimum_tls12(context: ssl.SSLContext):
    """Refuses SSLv3, TLS 1.0 and 1.1 on `context` (Python 3.6 has no minimum_version)."""
    if hasattr(context, 'minimum_version') and hasattr(ssl, 'TLSVersion'):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:  # pragma: no cover - Python 3.6
        context.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
