"""Where a webhook may be sent: a public HTTP(S) address, or one the operator allow-listed.

A supervisor sets a station's webhook URL, and the worker that posts to it sits inside the
plant's network: without this check the URL could reach the broker, the database, the cloud's
metadata service or any other internal service. So a URL is checked twice: when it is saved
(`webhook_url_problem`, the station's form names the field) and at every attempt on the
addresses its host resolves to then (`webhook_target_check`), whose result the delivery connects
to, so a name that resolves to a public address at the check and to an internal one a moment
later (DNS rebinding) never reaches the internal one. See docs/operations.md, "Webhooks".
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
# IPv6 prefixes that carry an IPv4 address: the embedded address is the one checked.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookTargetRefused(Exception):
    """The URL is not a webhook target Loupe posts to; the message says why."""


class WebhookHostUnresolved(WebhookTargetRefused):
    """The URL's host does not resolve (now)."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: its parts, and the addresses to connect to (every one of them allowed)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def webhook_target_check(url: str) -> WebhookTarget:
    """Parse `url`, resolve its host and check every address; raises `WebhookTargetRefused`."""
    scheme, host, port, path = _parts(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookHostUnresolved(f"the host {host} does not resolve ({error})") from error
    addresses = tuple(dict.fromkeys(ipaddress.ip_address(entry[4][0].split("%")[0]) for entry in found))
    if host not in settings.LOUPE_WEBHOOK_ALLOWED_HOSTS:
        for address in addresses:
            _address_check(address, host=host)
    return WebhookTarget(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


def webhook_url_problem(url: str) -> str | None:
    """Why `url` cannot be a station's webhook, or None. A host that does not resolve now is
    accepted (it is checked again at each delivery); one that resolves must resolve to allowed
    addresses only."""
    try:
        webhook_target_check(url)
    except WebhookHostUnresolved:
        return None
    except WebhookTargetRefused as refusal:
        return str(refusal)
    return None


def _parts(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise WebhookTargetRefused(f"only http and https URLs are posted to, not {scheme or 'this'}:")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError as error:
        raise WebhookTargetRefused(f"the port is not a number: {error}") from error
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookTargetRefused("the URL has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


def _address_check(address: IPAddress, *, host: str) -> None:
    """Refuse an address that is not public unless an allow-listed network holds it."""
    if any(address in network for network in settings.LOUPE_WEBHOOK_ALLOWED_NETWORKS):
        return
    checked = _embedded_ipv4(address) or address
    kind = _kind(checked)
    if kind is not None:
        named = host if host == str(address) else f"{host} ({address})"
        raise WebhookTargetRefused(
            f"{named} is a {kind} address; Loupe posts webhooks to public addresses only "
            "(an operator can allow a host or network: LOUPE_WEBHOOK_ALLOWED_HOSTS, "
            "LOUPE_WEBHOOK_ALLOWED_NETWORKS)"
        )


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """What makes an address internal, or None for a public one."""
    for kind, internal in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    ):
        if internal:
            return kind
    return None


def webhook_target_post(
    target: WebhookTarget, *, body: bytes, headers: dict[str, str], timeout: float
) -> int:
    """POST `body` to the target's checked addresses, each in turn until one connects, and return
    the answer's status code. The `Host` header, TLS SNI and certificate check use the URL's
    host; a redirect is returned, never followed; the answer's body is never read. Raises
    urllib3's errors (`urllib3.exceptions.HTTPError`)."""
    import urllib3

    failure: urllib3.exceptions.HTTPError | None = None
    for address in target.addresses:
        pool = _pool(target, address, timeout=timeout)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "Host": target.host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.ConnectTimeoutError as error:  # includes NewConnectionError
            failure = error
            continue
        else:
            response.close()
            return response.status
        finally:
            pool.close()
    raise failure or urllib3.exceptions.HTTPError(f"no address to connect to for {target.host}")


def _pool(target: WebhookTarget, address: IPAddress, *, timeout: float):
    import urllib3

    if target.scheme == "http":
        return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, maxsize=1)
    from requests.certs import where  # the CA bundle the other outgoing requests use

    return urllib3.HTTPSConnectionPool(
        str(address),
        target.port,
        timeout=timeout,
        maxsize=1,
        server_hostname=target.host,
        assert_hostname=target.host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=where(),
    )
