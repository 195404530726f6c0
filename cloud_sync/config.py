"""The WhatsApp channel's TOML file -> validated settings (pydantic, ``extra="forbid"``).

One file per store gateway (``instore gateway --whatsapp whatsapp.toml``); secrets are files or
``INSTORE_WA_*`` variables, never inline. Every problem is reported at once as ``file:line: key:
message`` (``tomllib`` gives no key lines on 3.11, so the store file's line scanner is reused).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware_config.validate import ConfigError, KeyPath, Problem, key_lines, line_of

from .rules import Category, FrequencyCap, Policy, QuietHours, Template, TemplateRegistry

ENV_TOKEN = "INSTORE_WA_ACCESS_TOKEN"
ENV_SECRET = "INSTORE_WA_APP_SECRET"
ENV_VERIFY = "INSTORE_WA_VERIFY_TOKEN"
ENV_BASE_URL = "INSTORE_WA_BASE_URL"

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_TEMPLATE_NAME = r"^[a-z0-9_]{1,512}$"
_LANG = r"^[a-z]{2,3}(_[A-Z]{2})?$"


def _hhmm(value: str) -> time:
    m = _HHMM.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a time like '21:00'")
    return time(int(m.group(1)), int(m.group(2)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSection(_Strict):
    base_url: str = "https://graph.facebook.com"
    version: Annotated[str, Field(pattern=r"^v[0-9]+\.[0-9]+$")] = "v23.0"
    phone_number_id: Annotated[str, Field(pattern=r"^[0-9]{5,20}$")]
    token_file: str | None = None
    catalog_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_]{1,64}$")] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.", "http://localhost", "http://[::1]")):
            raise ValueError("must be https:// (plain http only on loopback, for the emulator)")
        return v.rstrip("/")


class WebhookSection(_Strict):
    app_secret_file: str | None = None
    verify_token: Annotated[str, Field(min_length=8, max_length=200)] | None = None


class TemplateSection(_Strict):
    name: Annotated[str, Field(pattern=_TEMPLATE_NAME)]
    language: Annotated[str, Field(pattern=_LANG)]
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    params: Annotated[int, Field(ge=0, le=20)] = 0


class QuietHoursSection(_Strict):
    enabled: bool = True
    start: str = "21:00"
    end: str = "08:00"

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v


class FrequencyCapSection(_Strict):
    max_messages: Annotated[int, Field(ge=1, le=100)] = 1
    period_days: Annotated[float, Field(gt=0, le=90)] = 7.0


class TemplateRef(_Strict):
    template: Annotated[str, Field(pattern=_TEMPLATE_NAME)]
    language: Annotated[str, Field(pattern=_LANG)] | None = None  # default: the customer's, then "en"


class TriedJourney(TemplateRef):
    """Tried on in a fitting room, not bought: a note the next day at ``send_at`` (store time)."""

    enabled: bool = True
    template: Annotated[str, Field(pattern=_TEMPLATE_NAME)] = "tried_followup"
    send_at: str = "11:00"
    max_items: Annotated[int, Field(ge=1, le=10)] = 3
    max_late_h: Annotated[float, Field(gt=0, le=72)] = 24.0  # gateway down longer: drop, do not nag late

    @field_validator("send_at")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v


class BackInSizeJourney(TemplateRef):
    enabled: bool = True
    template: Annotated[str, Field(pattern=_TEMPLATE_NAME)] = "back_in_size"
    max_age_h: Annotated[float, Field(gt=0, le=168)] = 48.0  # stock news older than this is stale


class ReminderJourney(TemplateRef):
    enabled: bool = True
    template: Annotated[str, Field(pattern=_TEMPLATE_NAME)] = "appointment_reminder"
    hours_before: Annotated[float, Field(gt=0, le=168)] = 24.0
    # staff tasks of these kinds (with a customer and a due time) are reminded too, besides the
    # appointments and alteration pickups booked through /api/whatsapp/appointments
    task_kinds: list[str] = ["pickup"]


class JourneysSection(_Strict):
    enabled: bool = True  # master switch for this store
    interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    tried_not_bought: TriedJourney = TriedJourney()
    back_in_size: BackInSizeJourney = BackInSizeJourney()
    reminders: ReminderJourney = ReminderJourney()


class ShopSection(_Strict):
    # {items}: "gtin:qty,gtin:qty"; {ref}: a reference for the conversation; {store}: the store id.
    checkout_url: str = "https://shop.example.com/cart?items={items}&ref={ref}"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    # The gateway's address as customers' phones reach it: checkout links then go through its
    # click counter (`<link_base_url>/r/<token>`, gateway.storage.links); unset, they point at the shop directly.
    link_base_url: Annotated[str, Field(pattern=r"^https://[^/?#]+(/[^?#]*)?$")] | None = None

    @field_validator("checkout_url")
    @classmethod
    def _template(cls, v: str) -> str:
        if not v.startswith("https://") and not v.startswith("http://127."):
            raise ValueError("must be an https:// URL")
        if "{items}" not in v:
            raise ValueError("must contain the {items} placeholder")
        try:
            v.format(items="x", ref="y", store="z")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"only {{items}}, {{ref}} and {{store}} placeholders are allowed ({exc})"
            ) from None
        return v


class DailySummarySection(_Strict):
    """The manager's daily summary as a WhatsApp utility template (cloud_sync.daily_summary)."""

    # The manager's customer id: enrolled like a customer, with their WhatsApp number and the
    # service consent, which is checked before every send. Unset: no summary is sent.
    customer: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    template: Annotated[str, Field(pattern=_TEMPLATE_NAME)] = "daily_summary"  # 5 parameters, see docs/kpi.md
    at: str = "08:30"  # local time; yesterday's figures are final by then

    @field_validator("at")
    @classmethod
    def _time(cls, v: str) -> str:
        _hhmm(v)
        return v


class CatalogueSection(_Strict):
    enabled: bool = True
    interval_s: Annotated[float, Field(ge=1, le=86400)] = 300.0
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 1000  # Meta allows 5000; 1000 keeps bodies small


class OutboxSection(_Strict):
    rate_per_s: Annotated[float, Field(gt=0, le=1000)] = 20.0  # under Meta's 80/s default with headroom
    reconcile_after_s: Annotated[float, Field(gt=0, le=86400)] = 120.0
    worker: bool = True  # run the sending worker in the gateway process
    # A store of a chain: HQ's one outbox sends for the shared number; the store queues requests for it
    # (chain events) and runs no worker of its own (docs/chain.md, "WhatsApp at HQ").
    at_hq: bool = False


class CheckinSection(_Strict):
    """WhatsApp check-in (gateway.channels.checkin): the number the QR codes open, where newcomers enrol."""

    number: Annotated[str, Field(pattern=r"^[1-9][0-9]{6,14}$")]  # the business number, E.164 digits (wa.me)
    enrol_url: str  # the public enrolment page, sent to numbers we do not know

    @field_validator("enrol_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith("https://") and not v.startswith("http://127."):
            raise ValueError("must be an https:// URL")
        return v


class WhatsAppConfig(_Strict):
    timezone: str | None = None  # default: the store file's timezone
    store_name: Annotated[str, Field(min_length=1, max_length=60)] = "our store"
    api: ApiSection
    webhook: WebhookSection = WebhookSection()
    templates: list[TemplateSection] = []
    quiet_hours: QuietHoursSection = QuietHoursSection()
    frequency_cap: FrequencyCapSection = FrequencyCapSection()
    journeys: JourneysSection = JourneysSection()
    shop: ShopSection = ShopSection()
    catalogue: CatalogueSection = CatalogueSection()
    outbox: OutboxSection = OutboxSection()
    daily_summary: DailySummarySection = DailySummarySection()
    checkin: CheckinSection | None = None  # unset: no check-in (texts are ordinary messages)

    # secrets, resolved at load time (not from the TOML)
    access_token: str = ""
    app_secret: str = ""
    verify_token: str = ""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _templates_known(self) -> WhatsAppConfig:
        seen = set()
        for t in self.templates:
            if (t.name, t.language) in seen:
                raise ValueError(f"templates: {t.name!r}/{t.language!r} is listed twice")
            seen.add((t.name, t.language))
        names = {t.name for t in self.templates}
        for key, j in (
            ("tried_not_bought", self.journeys.tried_not_bought),
            ("back_in_size", self.journeys.back_in_size),
            ("reminders", self.journeys.reminders),
        ):
            if j.enabled and self.journeys.enabled and j.template not in names:
                raise ValueError(f"journeys.{key}.template: {j.template!r} is not in [[templates]]")
        if self.daily_summary.customer and self.daily_summary.template not in names:
            raise ValueError(f"daily_summary.template: {self.daily_summary.template!r} is not in [[templates]]")
        return self

    # -- derived objects
    def zone(self, store_tz: str = "UTC") -> ZoneInfo:
        return ZoneInfo(self.timezone or store_tz)

    def registry(self) -> TemplateRegistry:
        return TemplateRegistry(
            Template(t.name, t.language, Category(t.category), t.params) for t in self.templates
        )

    def policy(self, store_tz: str = "UTC") -> Policy:
        q = self.quiet_hours
        quiet = QuietHours(_hhmm(q.start), _hhmm(q.end)) if q.enabled else None
        cap = FrequencyCap(self.frequency_cap.max_messages, self.frequency_cap.period_days * 86400.0)
        return Policy(tz=self.zone(store_tz), templates=self.registry(), quiet_hours=quiet, marketing_cap=cap)


def _read_secret(base: Path, path: str | None) -> str:
    if not path:
        return ""
    p = Path(path)
    if not p.is_absolute():
        p = base / p
    return p.read_text(encoding="utf-8").strip()


def parse_config(
    text: str,
    filename: str = "<whatsapp.toml>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WhatsAppConfig:
    """Validate TOML ``text``; raise :class:`ConfigError` listing every problem with its line."""
    env = os.environ if environ is None else environ
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(filename, None, "(document)", f"TOML syntax: {exc}")]) from None
    if ENV_BASE_URL in env and isinstance(data.get("api"), dict):
        data["api"]["base_url"] = env[ENV_BASE_URL]
    lines = key_lines(text)
    try:
        cfg = WhatsAppConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, filename, lines) from None
    base = base_dir or Path(".")
    problems = []
    secrets: dict[str, str] = {}
    for field, env_key, section, rel in (
        ("access_token", ENV_TOKEN, ("api", "token_file"), cfg.api.token_file),
        ("app_secret", ENV_SECRET, ("webhook", "app_secret_file"), cfg.webhook.app_secret_file),
    ):
        try:
            secrets[field] = env.get(env_key) or _read_secret(base, rel)
        except OSError as exc:
            problems.append(
                Problem(filename, line_of(lines, section), ".".join(section), f"cannot read: {exc}")
            )
            continue
        if not secrets[field]:
            problems.append(
                Problem(
                    filename, line_of(lines, section[:1]), ".".join(section), f"required (or set {env_key})"
                )
            )
    verify = env.get(ENV_VERIFY) or cfg.webhook.verify_token or ""
    if not verify:
        problems.append(
            Problem(
                filename,
                line_of(lines, ("webhook",)),
                "webhook.verify_token",
                f"required (or set {ENV_VERIFY})",
            )
        )
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={**secrets, "verify_token": verify})


def _config_error(exc: ValidationError, filename: str, lines: dict[KeyPath, int]) -> ConfigError:
    """Every validation problem as file:line: key: message, in line order."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(document)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        problems.append(Problem(filename, line_of(lines, loc), key, msg))
    return ConfigError(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> WhatsAppConfig:
    p = Path(path)
    return parse_config(p.read_text(encoding="utf-8"), str(p), base_dir=p.parent, environ=environ)
