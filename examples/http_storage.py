"""A Storage plugin that posts metrics as JSON to an HTTP service (extending.txt's second
example; the seed's stray `:w` after the json argument is removed, and it logs as the seed's
expected output shows).

    socat - tcp4-listen:8000,fork     # a naive HTTP service to look at what is posted
    sudo env PYTHONPATH=examples python -m wca -c configs/extending/measurement_http_storage.yaml \
        -r http_storage:HTTPStorage --root --log http_storage:info
"""
import logging

import requests
from dataclasses import dataclass

from wca.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class HTTPStorage(Storage):
    http_endpoint: str = 'http://127.0.0.1:8000'

    def store(self, metrics):
        log.info('sending!')
        requests.post(
            self.http_endpoint,
            json={metric.name: metric.value for metric in metrics},
            timeout=5,
        )
