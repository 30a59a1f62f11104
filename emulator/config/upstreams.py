"""An upstream a function reaches through the fault proxy, as configured: ``host:port`` (with an optional
``close=mirror|fin|rst``), or a URL such as ``postgresql://app@127.0.0.1:5432/test`` (with the same optional
suffix), for a function that reads one ``DATABASE_URL``: each environment then gets the URL pointing at its own
proxy port, beside ``NAME_HOST`` and ``NAME_PORT``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# An upstream address: host:port, and optionally how the fault proxy passes on the server's close.
UPSTREAM = re.compile(
    r"(?P<host>[^\s:\[\]]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})(?:\s+close=(?P<close>mirror|fin|rst))?"
)
_URL = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://\S+)(?:\s+close=(?P<close>mirror|fin|rst))?")


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    close: str  # mirror | fin | rst
    url: str | None = None  # the URL form, when configured as one

    def variables(self, name: str, listen_host: str, listen_port: int) -> dict[str, str]:
        """What one environment is given to reach this upstream through its proxy port."""
        found = {f"{name}_HOST": listen_host, f"{name}_PORT": str(listen_port)}
        if self.url is not None:
            found[f"{name}_URL"] = _with_address(self.url, listen_host, listen_port)
        return found


def parse_upstream(address: str) -> Upstream | None:
    """The upstream an address names, or None when it is neither ``host:port`` nor a URL with a host and port."""
    parts = UPSTREAM.fullmatch(address)
    if parts is not None:
        return Upstream(parts["host"].strip("[]"), int(parts["port"]), parts["close"] or "mirror")
    url = _URL.fullmatch(address)
    if url is None:
        return None
    split = urlsplit(url["url"])
    try:
        port = split.port
    except ValueError:
        return None
    if not split.hostname or port is None:
        return None
    return Upstream(split.hostname, port, url["close"] or "mirror", url["url"])


def _with_address(url: str, host: str, port: int) -> str:
    split = urlsplit(url)
    credentials = split.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    netloc += f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(split._replace(netloc=netloc))
