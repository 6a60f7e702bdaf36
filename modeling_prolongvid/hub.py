"""Whether the Hugging Face Hub can be reached, asked in seconds (instead of minutes of download retries offline).

Light on purpose (huggingface_hub only): the inference service, the Space and the annotator's model loading share it.

    >>> import os
    >>> from modeling_prolongvid.hub import hub_reachable
    >>> hub_reachable() if os.environ.get("HF_HUB_OFFLINE") == "1" else False
    False
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

HUB_CONNECT_TIMEOUT = 3.0  # seconds


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT) -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) accepts a TCP connection; ``False`` under ``HF_HUB_OFFLINE=1``."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True
