"""Where upstream calls may go: an allow-list checked when a URL is written and again at connect time.

Two checks, one policy:

- **When a URL is written** (a model version's ``base_url``, a route target), :meth:`EgressPolicy.refusal`
  says whether it may be: the scheme must be one of ``egress.schemes`` (``https``/``http``); a
  link-local, cloud-metadata or reserved address, and a metadata host name, is refused in every
  role unless ``egress.allow`` names it; loopback only with ``egress.allow_loopback``; and a URL
  that a non-admin writes must name a host of the admin's configuration or of ``egress.allow``.
- **When a connection opens**, :meth:`EgressPolicy.address_refusal` checks the address the socket
  is about to connect to (after DNS, so a name that re-resolves to ``169.254.169.254`` is caught):
  the transport calls it from aiohttp's socket factory
  (:class:`~lmdeck.providers.transport_aiohttp.AiohttpTransport`).

    policy = EgressPolicy(allow=["*.example.com", "10.0.0.0/8"], admin_hosts=["api.openai.com"])
    policy.refusal("http://169.254.169.254/latest", trusted=True).rule      # 'metadata'
    policy.refusal("https://evil.test/v1", trusted=False).rule              # 'not_allowed'
    policy.address_refusal("127.0.0.1")                                     # None: loopback allowed

A host name in ``egress.allow`` lets a URL name it; the addresses it resolves to must still pass
the address rules. Only an address or CIDR in ``egress.allow`` lets a link-local, metadata,
reserved or (without ``allow_loopback``) loopback address through.
"""

from __future__ import annotations

import errno
import ipaddress
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lmdeck.protocol import APIError

if TYPE_CHECKING:
    from lmdeck.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Rule = Literal["scheme", "invalid_url", "metadata", "link_local", "loopback", "reserved", "not_allowed"]

#: Cloud instance-metadata endpoints (AWS, GCP, Azure, ECS, Alibaba, Oracle): credentials live there.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # ECS task credentials
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer
    )
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.platformequinix.com",
    }
)
LINK_LOCAL: tuple[IPNetwork, ...] = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
#: ``0.0.0.0`` and ``::`` reach this machine when connected to, so they count as loopback.
UNSPECIFIED: tuple[IPNetwork, ...] = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

_HINTS: dict[Rule, str] = {
    "scheme": "use https (or http): lmdeck's upstream transport speaks nothing else",
    "invalid_url": "write an absolute URL such as https://api.example.com/v1",
    "metadata": "cloud metadata endpoints hold the machine's credentials; an admin may list the address in "
    "`egress.allow` if an upstream really lives there",
    "link_local": "link-local addresses (169.254.0.0/16, fe80::/10) are refused unless an admin lists them in "
    "`egress.allow`",
    "reserved": "multicast, broadcast and reserved addresses are refused unless an admin lists them in `egress.allow`",
    "loopback": "upstreams on this machine need `egress.allow_loopback: true` or the address in `egress.allow` (admin)",
    "not_allowed": "name a host of the admin's configuration or of `egress.allow`, or ask an admin to add it",
}


@dataclass(frozen=True)
class Refusal:
    """Why a URL or an address may not be reached: the rule broken and a message naming the fix."""

    rule: Rule
    message: str

    @property
    def status(self) -> int:
        return 400 if self.rule in ("scheme", "invalid_url") else 403

    def api_error(self, field: str) -> APIError:
        """The refusal as the 400/403 a write gets, naming ``field`` (a JSON path) and the rule."""
        return APIError(self.status, f"{field}: {self.message}", param=field, code=f"egress_{self.rule}")


class EgressRefused(OSError):
    """Raised inside the transport when a connection would break the egress policy."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(errno.EACCES, f"egress policy: {refusal.message}")
        self.refusal = refusal


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an address (brackets, zone ids and IPv4-mapped IPv6 unwrapped), or None for a name."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_category(address: IPAddress) -> Rule | None:
    """The rule an address falls under: ``metadata``, ``link_local``, ``loopback``, ``reserved`` or None."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    if any(address in net for net in LINK_LOCAL if net.version == address.version):
        return "link_local"
    if address.is_loopback or any(address in net for net in UNSPECIFIED if net.version == address.version):
        return "loopback"
    if address.is_multicast or address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255"):
        return "reserved"
    return None


def host_category(host: str) -> Rule | None:
    """:func:`address_category` for an address; ``metadata`` or ``loopback`` for the well-known names."""
    address = parse_ip(host)
    if address is not None:
        return address_category(address)
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS:
        return "metadata"
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return "loopback"
    return None


def url_host(url: str) -> str | None:
    """The host of an absolute URL, lower-cased, or None when it has none."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


class EgressPolicy:
    """The allow-list and address rules of one gateway (``egress:`` in the settings)."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        schemes: Iterable[str] = ("https", "http"),
        allow_loopback: bool = True,
        admin_hosts: Iterable[str] = (),
    ) -> None:
        self.schemes = frozenset(s.lower() for s in schemes)
        self.allow_loopback = allow_loopback
        self.networks: list[IPNetwork] = []
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        for entry in allow:
            self._add(entry.strip().lower())
        self.admin_hosts = {h.lower().rstrip(".") for h in admin_hosts}

    def _add(self, entry: str) -> None:
        if entry.startswith("*."):
            self.suffixes.append(entry[1:])
            return
        try:
            self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            self.names.add(entry.rstrip("."))

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """The policy of ``settings.egress``; hosts the admin's routes and credentials name are allowed."""
        hosts = [url_host(t.base_url) for r in settings.routes for t in r.targets if t.base_url]
        hosts += [url_host(f"//{h}") for c in settings.credentials.values() for h in c.hosts]
        egress = settings.egress
        return cls(
            allow=egress.allow,
            schemes=egress.schemes,
            allow_loopback=egress.allow_loopback,
            admin_hosts=[h for h in hosts if h],
        )

    def explicitly_allows(self, address: IPAddress) -> bool:
        """Whether an address or CIDR of ``egress.allow`` covers ``address``."""
        return any(address in net for net in self.networks if net.version == address.version)

    def host_listed(self, host: str, extra_hosts: Iterable[str] = ()) -> bool:
        """Whether ``host`` is in the allow-list: ``egress.allow``, the admin's hosts or ``extra_hosts``."""
        name = host.lower().rstrip(".")
        if name in self.names or name in self.admin_hosts or name in {h.lower() for h in extra_hosts}:
            return True
        if any(name.endswith(suffix) for suffix in self.suffixes):
            return True
        address = parse_ip(name)
        if address is not None and self.explicitly_allows(address):
            return True
        return self.allow_loopback and host_category(name) == "loopback"

    def address_refusal(self, address: IPAddress | str) -> Refusal | None:
        """Connect time: may a socket connect to ``address``? None when it may."""
        ip = parse_ip(address) if isinstance(address, str) else address
        if ip is None:
            return Refusal("invalid_url", f"{address!r} is not an address")
        category = address_category(ip)
        if category is None or self.explicitly_allows(ip):
            return None
        if category == "loopback" and self.allow_loopback:
            return None
        return Refusal(category, f"the address {ip} is refused ({category.replace('_', '-')}): {_HINTS[category]}")

    def refusal(self, url: str, *, trusted: bool, extra_hosts: Iterable[str] = ()) -> Refusal | None:
        """Write time: may ``url`` be an upstream? ``trusted`` when an admin writes it (no allow-list check).

        Returns None when it may, else the :class:`Refusal` naming the rule.
        """
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
        except ValueError:
            return Refusal("invalid_url", f"{url!r} is not a valid URL: {_HINTS['invalid_url']}")
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            allowed = " or ".join(sorted(self.schemes))
            shown = f"{scheme}:" if scheme else "no scheme"
            return Refusal("scheme", f"{shown} is not an upstream scheme (allowed: {allowed}): {_HINTS['scheme']}")
        if not host:
            return Refusal("invalid_url", f"{url!r} names no host: {_HINTS['invalid_url']}")
        category = host_category(host)
        address = parse_ip(host)
        if category is not None:
            explicit = (address is not None and self.explicitly_allows(address)) or host.lower() in self.names
            if not explicit and not (category == "loopback" and self.allow_loopback):
                what = category.replace("_", "-")
                return Refusal(category, f"the host {host} is refused ({what}): {_HINTS[category]}")
        if not trusted and not self.host_listed(host, extra_hosts):
            return Refusal("not_allowed", f"the host {host} is not in the egress allow-list: {_HINTS['not_allowed']}")
        return None

    def check(self, url: str, field: str, *, trusted: bool, extra_hosts: Iterable[str] = ()) -> None:
        """Raise the 400/403 :class:`APIError` of :meth:`refusal`, naming ``field``; nothing when allowed."""
        refused = self.refusal(url, trusted=trusted, extra_hosts=extra_hosts)
        if refused is not None:
            raise refused.api_error(field)


def check_config_egress(settings: Settings, policy: EgressPolicy) -> None:
    """Refuse at start-up a config-file route target the address rules refuse (admin or not).

    Raises :class:`~lmdeck.settings.ConfigError` naming the target's field and the rule.
    """
    from lmdeck.settings import ConfigError

    for n, route in enumerate(settings.routes):
        for k, target in enumerate(route.targets):
            if target.base_url is None:
                continue
            refused = policy.refusal(target.base_url, trusted=True)
            if refused is not None:
                raise ConfigError(
                    f"routes.{n}.targets.{k}.base_url (route {route.name!r}): {refused.message} "
                    f"[egress rule: {refused.rule}]"
                )
