"""Every setting of signoff: typed, read from `SIGNOFF_*` environment variables, documented.

`docs/configuration.md` lists each setting; a test fails when one is missing there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit

PREFIX = "SIGNOFF_"

#: The alert evaluator's possible intervals: cron schedules that repeat evenly every hour.
ALERT_EVALUATION_INTERVALS: frozenset[int] = frozenset(
    [s for s in range(1, 61) if 60 % s == 0] + [60 * m for m in range(2, 61) if 60 % m == 0]
)


class SettingsError(ValueError):
    """A setting (or a combination of settings) that cannot work; the message names it."""


def _setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """A settings field: its default, its documentation, and whether it must never be logged."""
    if isinstance(default, list | tuple):
        value = tuple(default)
        return field(default=value, metadata={"doc": doc, "secret": secret})
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The process configuration. Build it with `Settings.from_env()`; use `get_settings()`."""

    environment: str = _setting(
        "development",
        "`development` or `production`; `serve` and `worker` refuse to start unless it is set "
        "explicitly. Development enables `signoff token`, GraphiQL and introspection by "
        "default and unmasked error messages.",
    )
    database_url: str = _setting(
        "",
        "PostgreSQL URL (`postgresql://user:pass@host:5432/db`) the API and workers connect "
        "with. Its role must be a member of `signoff_app` that is neither superuser nor the "
        "tables' owner, so that row-level security binds it (in production `serve` and "
        "`worker` refuse to start otherwise; docs/security.md). Empty: `signoff dev` starts an "
        "embedded PostgreSQL under `data_dir`; other commands refuse to start.",
    )
    migration_database_url: str = _setting(
        "",
        "PostgreSQL URL of the role that owns the tables, used only to apply migrations "
        "(`signoff migrate`, `signoff dev`); it needs the right to create roles the first "
        "time (the migrations create `signoff_app`). Empty: `database_url`.",
    )
    tenants_on_first_use: bool = _setting(
        False,
        "Create a tenant the first time a change names it. Off: tenants exist only when an "
        "administrator creates them (`signoff tenants create`), and a change in an unknown "
        "tenant is refused with UNKNOWN_TENANT. For test deployments that invent tenants.",
    )
    redis_url: str = _setting(
        "",
        "Redis URL (`redis://host:6379/0`). Empty: `signoff dev` starts an embedded Redis under "
        "`data_dir`; other commands refuse to start.",
    )
    redis_prefix: str = _setting(
        "signoff",
        "Prefix of every Redis key and of the job queue name, so that several deployments (or "
        "test runs) can share one Redis.",
    )
    data_dir: str = _setting(
        ".signoff", "Directory for the embedded PostgreSQL and Redis of `signoff dev`."
    )
    host: str = _setting("127.0.0.1", "Address the API listens on.")
    port: int = _setting(8000, "Port the API listens on.")
    worker_metrics_port: int = _setting(
        0,
        "Port on which `signoff worker` serves its Prometheus metrics (`/metrics`, on `host`); "
        "0: none. Each worker needs a port of its own, unless they share "
        "`PROMETHEUS_MULTIPROC_DIR` (see docs/operations/metrics.md). The API serves its own "
        "at `/metrics` on its port.",
    )
    public_url: str = _setting(
        "http://127.0.0.1:8000",
        "Base URL of the reviewer UI or API, used for links in notifications.",
    )
    decision_link_channels: tuple[str, ...] = _setting(
        [],
        "Channels whose notifications asking someone to decide an approval step (assignment, "
        "escalation, reminder, deadline risk) carry signed, single-use decision links, one to "
        "approve and one to reject (e.g. `email`). Empty: no links.",
    )
    decision_link_ttl_seconds: int = _setting(
        259200, "How long a decision link works after its notification was planned (3 days)."
    )
    decision_link_base_url: str = _setting(
        "",
        "What a decision link's token is appended to. Empty: `public_url` + `/decide/`, which "
        "the API redirects to the reviewer console's confirmation page "
        "(`/console/decide?token=`) when it serves the console, and otherwise answers with its "
        "built-in page; another frontend's page can take it over (e.g. "
        "`https://review.example.org/decide?token=`).",
    )
    jwt_algorithms: tuple[str, ...] = _setting(
        ["HS256"],
        "Accepted JWT algorithms, fixed by configuration and never taken from the token. Use "
        "`HS256` with `jwt_secret` or `RS256`/`ES256` with `jwt_public_key`; never mix HMAC and "
        "public-key algorithms.",
    )
    jwt_secret: str = _setting(
        "",
        "Shared HMAC secret for HS256 (at least 32 bytes; required by `serve`). Only `signoff "
        "dev` (and `signoff token` in development) fall back to a fixed, public development "
        "secret when it is empty.",
        secret=True,
    )
    jwt_public_key: str = _setting(
        "", "PEM public key for RS256/ES256 tokens (or `@/path/to/key.pem`)."
    )
    jwt_issuer: str = _setting("signoff-dev", "Required `iss` claim.")
    jwt_audience: str = _setting("signoff", "Required `aud` claim.")
    jwt_leeway_seconds: int = _setting(30, "Clock skew tolerated when checking `exp`/`nbf`.")
    cors_origins: tuple[str, ...] = _setting(
        [],
        "Origins allowed for CORS and for cross-origin websocket handshakes (comma separated).",
    )
    graphiql: bool | None = _setting(
        None, "Serve GraphiQL on `GET /graphql`. Default: on in development, off in production."
    )
    console_dir: str = _setting(
        "",
        "Directory of the built reviewer console (`console/dist`, made by `scripts/console "
        "build`) served at `/console/`. Empty: not served; `signoff dev` then serves the "
        "repository's `console/dist` when it exists.",
    )
    db_pool_min: int = _setting(2, "Minimum PostgreSQL connections per process.")
    db_pool_max: int = _setting(10, "Maximum PostgreSQL connections per process.")
    max_query_depth: int = _setting(12, "Deepest GraphQL selection accepted.")
    max_page_size: int = _setting(100, "Largest `first` accepted by a paginated field.")
    inbox_count_limit: int = _setting(
        1000,
        "Most inbox items counted for `totalCount` and `facets`; above it the counts cover the "
        "first ones and `countsExact` is false (docs/inbox.md).",
    )
    max_query_cost: int = _setting(
        1000,
        "Highest static cost (database statements at most) of one GraphQL operation; see "
        "docs/reference/limits.md.",
    )
    max_query_nodes: int = _setting(
        500000, "Most objects one GraphQL response may hold, as computed before it runs."
    )
    max_query_aliases: int = _setting(
        50, "Most aliases in one GraphQL document, fragments included as often as spread."
    )
    max_query_tokens: int = _setting(
        10000, "Most lexical tokens in one GraphQL document (checked while parsing)."
    )
    rate_limit_capacity: int = _setting(
        5000,
        "Cost points in each caller's bucket (per user, or per address without a token); "
        "every request takes its cost, at least 1. 0 turns the rate limit off.",
    )
    rate_limit_per_second: float = _setting(
        50.0, "Cost points given back to each bucket per second."
    )
    query_timeout_seconds: float = _setting(
        30.0, "Longest a query or mutation may run before it is abandoned (TIMEOUT)."
    )
    introspection: str = _setting(
        "",
        "`on`, `off`, or `admins` (only callers with an admin role). Default: on in "
        "development, off in production.",
    )
    max_payload_bytes: int = _setting(65536, "Largest item payload (JSON bytes).")
    max_request_bytes: int = _setting(
        2_000_000, "Largest HTTP request body accepted (larger ones get HTTP 413)."
    )
    max_steps_per_template: int = _setting(50, "Most steps in one template or plan.")
    max_dependency_depth: int = _setting(10, "Longest dependency chain in a template or plan.")
    max_open_items_per_requester: int = _setting(
        1000, "Most open (undecided) items one requester may have at once."
    )
    max_batch_decisions: int = _setting(
        50,
        "Most decisions in one `decideSteps` request; each is priced like one `approveStep` "
        "(docs/reference/limits.md).",
    )
    override_roles: tuple[str, ...] = _setting(
        ["admin", "override"],
        "Default grantees of `override` (a tenant may change them: docs/reference/permissions.md).",
    )
    admin_roles: tuple[str, ...] = _setting(
        ["admin"],
        "Default grantees of the administrative permissions (templates, timers, "
        "notifications, retention, redaction, permissions), `manage_items`, `read_all_items`, "
        "`moderate_comments`, `export_audit` and `read_audit_details`; the introspection "
        "setting `admins` means these roles. A tenant may change its grants: "
        "docs/reference/permissions.md.",
    )
    legal_hold_roles: tuple[str, ...] = _setting(
        ["admin", "legal"],
        "Default grantees of `legal_hold`: placing and releasing legal holds (and seeing "
        "an item's hold).",
    )
    auditor_roles: tuple[str, ...] = _setting(
        ["auditor"],
        "Default grantees (with the admin roles) of `export_audit` and `read_audit_details`: "
        "verifying the audit chain, exporting the trail, seeing the client address and user "
        "agent of audit events.",
    )
    override_min_justification: int = _setting(
        20, "Minimum length of an override justification, in characters."
    )
    ws_connection_init_timeout: float = _setting(
        10.0, "Seconds a websocket client has to send `connection_init`."
    )
    ws_max_subscriptions: int = _setting(20, "Most concurrent subscriptions per websocket.")
    ws_max_queued_events: int = _setting(
        1000,
        "Most events queued for one subscription that is not keeping up; past it the queue is "
        "dropped and the subscription ends with `ResyncRequired` (resubscribe from its cursor).",
    )
    realtime_poll_seconds: float = _setting(
        2.0,
        "Seconds between the fallback reads of a tenant's event feed when no notification "
        "arrives (one read per tenant per API process, whatever the number of subscribers).",
    )
    ws_max_sockets_per_user: int = _setting(
        20, "Most websockets one user may hold open at once, across every API process."
    )
    ws_max_sockets_per_address: int = _setting(
        200, "Most websockets one client address may hold open at once, across every API process."
    )
    log_level: str = _setting(
        "INFO", "Log level of the `signoff` loggers and of the HTTP server's own messages."
    )
    log_format: str = _setting(
        "auto",
        "`json` (one JSON object per line: time, level, logger, message, request_id, tenant, "
        "operation and any extra fields such as duration_ms), `text`, or `auto`: JSON in "
        "production, text in development.",
    )
    access_log: bool = _setting(
        False,
        "Log one line per HTTP request (the server's access log) and one per GraphQL operation "
        "(`signoff.operations`: operation, tenant, request id, duration_ms). Off by default: "
        "it costs a few percent of CPU per request; a load balancer's log usually serves "
        "instead.",
    )
    otlp_traces_endpoint: str = _setting(
        "",
        "OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`): the API and the workers "
        "export OpenTelemetry spans to it, one trace from a request through the jobs it queues "
        "(docs/operations/metrics.md). Empty: no tracing, at no cost. The SDK's `OTEL_BSP_*` "
        "variables tune the export batches.",
    )
    notify_channels: str = _setting(
        "",
        "Notification channels to enable, as a JSON object `{channel: {field: value}}` or "
        "`@/path/to/channels.json`. Only channels named here are used; an invalid "
        "configuration stops start-up naming plugin, channel and field.",
        secret=True,
    )
    outbound_allow: tuple[str, ...] = _setting(
        [],
        "Non-public destinations notification deliveries may reach anyway: CIDR ranges "
        "(`10.20.0.0/16`) or host names (comma separated). Loopback, private, link-local and "
        "other non-public addresses are refused otherwise, after DNS resolution and on "
        "redirects.",
    )
    notify_max_attempts: int = _setting(
        6, "Delivery attempts per notification before it is dead-lettered."
    )
    notify_backoff_base_seconds: float = _setting(
        30.0, "Delay before the first retry; doubled for each further attempt, with jitter."
    )
    notify_backoff_cap_seconds: float = _setting(
        3600.0, "Longest delay between two delivery attempts (a channel's Retry-After wins)."
    )
    notify_digest_threshold: int = _setting(
        5,
        "Low- and normal-priority notifications to one recipient on one channel within the "
        "digest window that are sent one by one; the rest are folded into a digest.",
    )
    notify_digest_window_seconds: int = _setting(
        600, "Length of the burst window, and how long held notifications wait for a digest."
    )
    notify_deliver_timeout_seconds: float = _setting(
        30.0, "Longest a channel plugin may take for one delivery attempt."
    )
    notify_deliver_batch: int = _setting(
        20,
        "Deliveries claimed together (one statement), sent at once and recorded together. "
        "Larger batches cost fewer transactions per delivery; each waits for its slowest "
        "channel.",
    )
    notify_deliver_lanes: int = _setting(
        8,
        "Batches of deliveries one delivery job keeps in flight at once: at most this many "
        "times `notify_deliver_batch` plugin calls wait on receivers together.",
    )
    notify_batch_size: int = _setting(500, "Audit events planned per batch.")
    timer_horizon_seconds: int = _setting(
        120,
        "Timers due within this many seconds are handed to the job queue (deferred to their due "
        "time); later ones wait in the database for the sweeper, so Redis holds only near-term "
        "jobs.",
    )
    timer_sweep_seconds: int = _setting(
        10,
        "How often the sweeper re-arms due timers that have no job (after a worker crash or a "
        "flushed Redis), in seconds. Must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or "
        "60) and be at most `timer_horizon_seconds`.",
    )
    timer_batch_size: int = _setting(
        200,
        "Due timers fired per transaction. Larger batches fire faster but hold their items' "
        "locks longer (a person acting on one of them waits for the batch).",
    )
    timer_lanes: int = _setting(
        2,
        "Batches of due timers one firing job runs at once, each on a bucket of the items "
        "(split by item id) that no other lane holds, so that one batch's Python work "
        "overlaps another's database round trips.",
    )
    timer_tenants: tuple[str, ...] = _setting(
        [],
        "Tenants this worker works for (comma separated): whose timers it sweeps and fires, "
        "whose alert rules it evaluates, whose notifications its sweeper plans, folds into "
        "digests and delivers, and whose retention policies it applies. Empty: every tenant. "
        "Lets a tenant have workers of its own.",
    )

    alert_evaluation_seconds: int = _setting(
        60,
        "How often a worker evaluates every enabled alert rule, in seconds: a number that "
        "divides 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60), or a whole number of minutes "
        "that divides an hour (120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800 or 3600). "
        "Rounds start at second 50 of the minute (away from the sweepers at second 0). "
        "Anything else stops start-up with a configuration error.",
    )

    comment_max_chars: int = _setting(
        10000, "Longest comment body, in characters (after trimming surrounding whitespace)."
    )
    comment_max_mentions: int = _setting(20, "Most distinct `@mentions` in one comment.")
    comment_max_per_item: int = _setting(
        5000, "Most comments (replies included, deleted ones too) on one item."
    )

    evidence_storage: str = _setting(
        "local",
        "Where evidence files are kept: `local` (a directory) or `s3` (an S3-compatible store).",
    )
    evidence_local_dir: str = _setting(
        "", "Directory of the `local` evidence store. Empty: `evidence/` under `data_dir`."
    )
    evidence_s3_bucket: str = _setting("", "Bucket of the `s3` evidence store.")
    evidence_s3_prefix: str = _setting("", "Key prefix inside the bucket (e.g. `signoff/`).")
    evidence_s3_endpoint: str = _setting(
        "", "Endpoint URL of an S3-compatible store (MinIO, Ceph, ...). Empty: AWS S3."
    )
    evidence_s3_region: str = _setting("", "Region of the bucket. Empty: from the environment.")
    evidence_s3_access_key_id: str = _setting(
        "", "Access key id. Empty: the usual AWS credential sources (environment, role)."
    )
    evidence_s3_secret_access_key: str = _setting(
        "", "Secret access key for `evidence_s3_access_key_id`.", secret=True
    )
    evidence_max_bytes: int = _setting(
        26_214_400, "Largest evidence file, in bytes (default 25 MiB)."
    )
    evidence_content_types: tuple[str, ...] = _setting(
        [
            "application/pdf",
            "application/json",
            "text/plain",
            "text/csv",
            "text/markdown",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/zip",
            "application/x-ndjson",
            "application/octet-stream",
        ],
        "Media types an evidence file may have (parameters such as `charset` aside).",
    )
    evidence_max_per_item: int = _setting(100, "Most evidence files attached to one item.")
    evidence_upload_ttl_seconds: int = _setting(
        900, "How long an upload URL stays valid; an unfinished upload is discarded after it."
    )
    evidence_download_ttl_seconds: int = _setting(
        300, "How long a download URL handed out in `Evidence.downloadUrl` stays valid."
    )
    audit_export_retention_days: int = _setting(
        30,
        "Days a completed audit export's file and manifest are kept in the evidence store; then "
        "the retention job removes them (audited) and a download is refused with "
        "`EXPORT_EXPIRED`. 0: kept until removed by hand.",
    )
    url_signing_secret: str = _setting(
        "",
        "HMAC key signing evidence upload and download URLs (at least 32 bytes). Empty: derived "
        "from `jwt_secret`; required in production when tokens use a public-key algorithm.",
        secret=True,
    )

    @property
    def is_development(self) -> bool:
        """Development mode unlocks conveniences that must never run in production."""
        return self.environment == "development"

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is on when asked for, or by default in development."""
        return self.is_development if self.graphiql is None else self.graphiql

    @property
    def effective_introspection(self) -> str:
        """Whether schema introspection is served: `on`, `off` or `admins`."""
        if self.introspection:
            return self.introspection
        return "on" if self.is_development else "off"

    @property
    def effective_jwt_secret(self) -> str:
        """The HMAC secret. There is no built-in one: `signoff dev` supplies its own."""
        return self.jwt_secret

    @property
    def effective_url_signing_secret(self) -> bytes:
        """The key signing evidence URLs: its own, or one derived from the JWT secret (never
        the JWT secret itself, so that a URL can never pass for a bearer token)."""
        if self.url_signing_secret:
            return self.url_signing_secret.encode()
        base = self.effective_jwt_secret or "signoff-development-url-key-do-not-use-in-production"
        return hashlib.sha256(b"signoff evidence urls\n" + base.encode()).digest()

    @property
    def effective_decision_link_base_url(self) -> str:
        """The prefix of decision links (the token follows it)."""
        return self.decision_link_base_url or self.public_url.rstrip("/") + "/decide/"

    @property
    def evidence_dir(self) -> Path:
        """Directory of the local evidence store."""
        return Path(self.evidence_local_dir or Path(self.data_dir) / "evidence")

    @property
    def job_queue_name(self) -> str:
        """The arq queue of this deployment."""
        return f"{self.redis_prefix}:jobs"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from `SIGNOFF_<FIELD>`; raise SettingsError naming a bad variable."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = PREFIX + f.name.upper()
            if name not in environ:
                continue
            raw = environ[name]
            try:
                values[f.name] = _convert(raw, hints[f.name])
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that would be unsafe or cannot work."""
        if self.environment not in ("development", "production"):
            raise SettingsError("SIGNOFF_ENVIRONMENT must be development or production")
        if self.log_format not in ("auto", "json", "text"):
            raise SettingsError("SIGNOFF_LOG_FORMAT must be auto, json or text")
        algs = set(self.jwt_algorithms)
        if not algs:
            raise SettingsError("SIGNOFF_JWT_ALGORITHMS must name at least one algorithm")
        hmac_algs = {a for a in algs if a.startswith("HS")}
        if hmac_algs and hmac_algs != algs:
            raise SettingsError(
                "SIGNOFF_JWT_ALGORITHMS must not mix HMAC and public-key algorithms"
            )
        if "none" in {a.lower() for a in algs}:
            raise SettingsError("SIGNOFF_JWT_ALGORITHMS must not contain 'none'")
        if not self.is_development and hmac_algs and len(self.jwt_secret.encode()) < 32:
            raise SettingsError("SIGNOFF_JWT_SECRET must be at least 32 bytes in production")
        if not hmac_algs and not self.jwt_public_key:
            raise SettingsError("SIGNOFF_JWT_PUBLIC_KEY is required for public-key algorithms")
        if not self.is_development and not hmac_algs and len(self.url_signing_secret) < 32:
            raise SettingsError(
                "SIGNOFF_URL_SIGNING_SECRET (at least 32 bytes) is required in production with "
                "public-key JWT algorithms"
            )
        if not 0 <= self.audit_export_retention_days <= 36_500:
            raise SettingsError("SIGNOFF_AUDIT_EXPORT_RETENTION_DAYS must be between 0 and 36500")
        if self.evidence_storage not in ("local", "s3"):
            raise SettingsError("SIGNOFF_EVIDENCE_STORAGE must be local or s3")
        if self.evidence_storage == "s3" and not self.evidence_s3_bucket:
            raise SettingsError(
                "SIGNOFF_EVIDENCE_S3_BUCKET is required with SIGNOFF_EVIDENCE_STORAGE=s3"
            )
        if self.introspection not in ("", "on", "off", "admins"):
            raise SettingsError("SIGNOFF_INTROSPECTION must be on, off or admins")
        if self.rate_limit_capacity and self.rate_limit_capacity < self.max_query_cost:
            raise SettingsError(
                "SIGNOFF_RATE_LIMIT_CAPACITY must be at least SIGNOFF_MAX_QUERY_COST"
            )
        if self.rate_limit_per_second <= 0:
            raise SettingsError("SIGNOFF_RATE_LIMIT_PER_SECOND must be positive")
        if self.db_pool_min < 1 or self.db_pool_max < self.db_pool_min:
            raise SettingsError("need 1 <= SIGNOFF_DB_POOL_MIN <= SIGNOFF_DB_POOL_MAX")
        if not 1 <= self.timer_sweep_seconds <= 60 or 60 % self.timer_sweep_seconds:
            raise SettingsError(
                "SIGNOFF_TIMER_SWEEP_SECONDS must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 "
                f"or 60), not {self.timer_sweep_seconds}"
            )
        if self.alert_evaluation_seconds not in ALERT_EVALUATION_INTERVALS:
            raise SettingsError(
                "SIGNOFF_ALERT_EVALUATION_SECONDS must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, "
                "20, 30 or 60) or be whole minutes that divide an hour (120, 180, 240, 300, 360, "
                f"600, 720, 900, 1200, 1800 or 3600), not {self.alert_evaluation_seconds}"
            )
        if self.notify_deliver_batch < 1:
            raise SettingsError("SIGNOFF_NOTIFY_DELIVER_BATCH must be at least 1")
        if self.notify_deliver_lanes < 1:
            raise SettingsError("SIGNOFF_NOTIFY_DELIVER_LANES must be at least 1")
        if self.timer_batch_size < 1:
            raise SettingsError("SIGNOFF_TIMER_BATCH_SIZE must be at least 1")
        if self.timer_lanes < 1:
            raise SettingsError("SIGNOFF_TIMER_LANES must be at least 1")
        if self.timer_horizon_seconds < self.timer_sweep_seconds:
            raise SettingsError(
                "SIGNOFF_TIMER_HORIZON_SECONDS must be at least SIGNOFF_TIMER_SWEEP_SECONDS: "
                "timers coming due between two sweeps would wait for the next one"
            )

    def public_key_pem(self) -> str:
        """The configured public key, read from a file when given as `@path`."""
        if self.jwt_public_key.startswith("@"):
            return Path(self.jwt_public_key[1:]).read_text()
        return self.jwt_public_key

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets (and passwords inside URLs) masked, for logs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = _mask_url_password(value)
            out[f.name] = value
        return out


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _convert(raw: str, hint: Any) -> Any:
    text = raw.strip()
    if hint in (int, "int"):
        return int(text)
    if hint in (float, "float"):
        return float(text)
    if hint == bool | None or hint is bool:
        if text == "" and hint is not bool:
            return None
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if hint == tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return raw


def setting_docs() -> dict[str, str]:
    """Environment variable name → documentation, for `docs/configuration.md`."""
    return {PREFIX + f.name.upper(): f.metadata["doc"] for f in dataclasses.fields(Settings)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
