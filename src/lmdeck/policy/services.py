"""Access control and cost governance, assembled once per gateway.

    policy = PolicyServices.build(settings, db)          # reads $vault refs, bootstraps the admin key, binds $secret refs
    router = Router.from_settings(...)                   # providers may now resolve {"$secret"/"$vault": ...}
    declarations = [..., *policy.steps(router, policy.keys), ...]   # sorted by build_pipeline
    await policy.start()                                 # load keys and budgets, then keep them fresh

Routes reach it as the gateway's ``policy`` field through
:func:`lmdeck.app.services.policy_of`. The pipeline steps it declares (see
:mod:`lmdeck.pipeline.order` for the phases): ``authenticate`` (phase ``identify``), then
``concurrency`` → ``ratelimit`` → ``budget`` (phase ``admit``, in that order) and ``cost``
(phase ``meter``, next to the dispatcher).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from lmdeck.changes import ChangeNotices
from lmdeck.db import Database
from lmdeck.db.redis_link import RedisLink
from lmdeck.gateway.routing.router import Router
from lmdeck.pipeline.identity import Authenticator
from lmdeck.pipeline.order import StepDeclaration
from lmdeck.policy.admin import AccessAdmin
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.auth import Authenticate
from lmdeck.policy.bootstrap import bootstrap_admin_key
from lmdeck.policy.budget_admin import BudgetAdmin
from lmdeck.policy.budget_step import EnforceBudget, router_models
from lmdeck.policy.budgets import BudgetStore
from lmdeck.policy.concurrency import ConcurrencyLimiter
from lmdeck.policy.concurrency_step import ConcurrencyCap
from lmdeck.policy.cost import MeterCost
from lmdeck.policy.credentials import CredentialGate
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.policy.key_cache import KeyCache
from lmdeck.policy.ledger import BudgetAlerts, BudgetBook, MemoryBudgetLedger
from lmdeck.policy.ledger_redis import RedisBudgetLedger
from lmdeck.policy.pricing import PriceTable
from lmdeck.policy.ratelimit import MemoryRateLimiter, RateLimiter
from lmdeck.policy.ratelimit_redis import RedisRateLimiter
from lmdeck.policy.ratelimit_step import RateLimit
from lmdeck.policy.secrets import SecretBox, SecretStore, bind_secrets
from lmdeck.policy.spend import SpendReports
from lmdeck.policy.vault import VaultKV, bind_vault
from lmdeck.polling import Poller
from lmdeck.providers.egress import EgressPolicy
from lmdeck.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class PolicyServices:
    """Keys, limits, budgets, prices, the audit log and provider secrets of one gateway."""

    settings: Settings
    db: Database
    identities: IdentityStore
    keys: KeyCache
    audit: AuditLog
    secrets: SecretStore
    credentials: CredentialGate
    prices: PriceTable
    limiter: RateLimiter
    ledger: BudgetBook
    alerts: BudgetAlerts
    access: AccessAdmin
    budgets: BudgetAdmin
    vault: VaultKV | None = None
    _poller: Poller = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._poller = Poller(
            self.refresh,
            interval=self.settings.policy.refresh_interval,
            name="lmdeck-policy-refresh",
            log=log,
            failure="reloading keys and budgets failed; keeping the previous ones",
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        *,
        announce_admin_key: bool = True,
        egress: EgressPolicy | None = None,
        default_base_url: Callable[[str], str | None] = lambda provider: None,
    ) -> PolicyServices:
        """Everything, built and ready to start; blocking (store reads), so call it at start-up.

        ``egress`` (default: the settings') checks the upstream URLs model versions name;
        ``default_base_url`` says where a provider sends calls when a version sets no ``base_url``.
        """
        vault = VaultKV.from_settings(settings)
        bind_vault(settings, vault)  # first: the admin and master keys may live in Vault
        identities = IdentityStore(db)
        bootstrap_admin_key(identities, settings, announce_admin_key)
        secrets = SecretStore(db, SecretBox.from_settings(settings))
        bind_secrets(settings, secrets)
        keys = KeyCache(identities, refresh_interval=settings.policy.refresh_interval)
        keys.load()
        credentials = CredentialGate(
            settings,
            egress or EgressPolicy.from_settings(settings),
            author_role=keys.role_of_actor,
            lookup=secrets.get,
            vault=vault.read if vault is not None else None,
            default_base_url=default_base_url,
            team_name=keys.team_name,
        )
        audit = AuditLog(db)
        alerts = BudgetAlerts()
        ledger = MemoryBudgetLedger(alerts)
        budgets = BudgetAdmin(
            BudgetStore(db), ledger, audit, SpendReports(db), identities, soft_limit=settings.policy.soft_limit
        )
        return cls(
            settings=settings,
            db=db,
            identities=identities,
            keys=keys,
            audit=audit,
            secrets=secrets,
            credentials=credentials,
            prices=PriceTable.from_settings(settings),
            limiter=MemoryRateLimiter(),
            ledger=ledger,
            alerts=alerts,
            access=AccessAdmin(identities, keys, audit, secrets, rotation_grace=settings.policy.rotation_grace),
            budgets=budgets,
            vault=vault,
        )

    def share(self, link: RedisLink | None) -> None:
        """Count rate limits and budgets in the Redis every replica shares (``redis.url``); None: in this
        process. Call it before :meth:`steps` and :meth:`start` (the steps and the budget admin take the
        shared limiter and ledger from here)."""
        if link is None:
            return
        self.limiter = RedisRateLimiter(link)
        self.ledger = RedisBudgetLedger(link, self.alerts)
        self.budgets.ledger = self.ledger

    def steps(self, router: Router, authenticator: Authenticator) -> list[StepDeclaration]:
        """The pipeline steps of access control and cost governance, declared by phase.

        ``authenticator`` resolves the keys of requests (``keys``, or a wrapper of it that
        also knows in-process callers); ``router`` tells budgets which models exist.
        """
        assumed = self.settings.policy.assumed_max_tokens
        return [
            StepDeclaration(Authenticate(authenticator), "identify"),
            StepDeclaration(ConcurrencyCap(ConcurrencyLimiter(self.settings.policy.concurrency)), "admit"),
            StepDeclaration(RateLimit(self.limiter, self.keys, self.settings.policy), "admit"),
            StepDeclaration(EnforceBudget(self.ledger, self.prices, router_models(router), assumed), "admit"),
            StepDeclaration(MeterCost(self.prices, assumed), "meter"),
        ]

    async def start(self) -> None:
        await self.keys.reload()
        await anyio.to_thread.run_sync(self.budgets.load)
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
        if self.vault is not None:
            self.vault.close()

    async def refresh(self) -> None:
        """Pick up keys, teams and budgets changed by other processes."""
        await self.keys.reload()
        await self.budgets.reload()

    def follow_changes(self, changes: ChangeNotices) -> None:
        """Announce key, team and budget changes through ``changes``; reload at once on other processes'."""
        self.access.changes = changes
        self.budgets.changes = changes
        changes.subscribe("policy", self._poller.nudge)
