"""When may a message go out?  (pure: the caller passes ``now`` and the customer's history)

:func:`decide` answers for one message: send now, defer until a time, needs an approved
template, or refuse with a reason. It checks templates, consent, the 24-hour window, quiet hours
and the marketing cap, in that order (docs/whatsapp.md, "When a message may go out").
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import messages

WINDOW_S = 24 * 3600.0  # Meta's customer-service window
CAP_PERIOD_S = 7 * 86400.0  # marketing frequency cap period: one week (store's choice)
CAP_MAX = 1  # marketing messages per period: one a week keeps block/report rates low


class Purpose(enum.Enum):
    SERVICE = "service"  # reply inside the window to something the customer asked
    UTILITY = "utility"  # transactional: order ready, reservation, receipt
    MARKETING = "marketing"  # offers, back-in-stock promotions
    AUTHENTICATION = "authentication"  # one-time codes


class Category(enum.Enum):
    MARKETING = "MARKETING"
    UTILITY = "UTILITY"
    AUTHENTICATION = "AUTHENTICATION"


_CATEGORY_PURPOSE = {
    Category.MARKETING: Purpose.MARKETING,
    Category.UTILITY: Purpose.UTILITY,
    Category.AUTHENTICATION: Purpose.AUTHENTICATION,
}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    language: str
    category: Category
    param_count: int

    def __post_init__(self) -> None:
        if self.param_count < 0:
            raise ValueError("param_count: must be >= 0")


class TemplateRegistry:
    """Approved templates by ``(name, language)``."""

    __slots__ = ("_by_key",)

    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self._by_key: dict[tuple[str, str], Template] = {}
        for t in templates:
            if (t.name, t.language) in self._by_key:
                raise ValueError(f"templates: duplicate {t.name!r}/{t.language!r}")
            self._by_key[(t.name, t.language)] = t

    def get(self, name: str, language: str) -> Template | None:
        return self._by_key.get((name, language))

    def __iter__(self) -> Iterator[Template]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock interval ``[start, end)``; may span midnight (21:00-08:00)."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    max_messages: int = CAP_MAX
    period_s: float = CAP_PERIOD_S


@dataclass(frozen=True, slots=True)
class Policy:
    tz: ZoneInfo
    templates: TemplateRegistry
    quiet_hours: QuietHours | None = QuietHours(time(21, 0), time(8, 0))
    marketing_cap: FrequencyCap = FrequencyCap()
    window_s: float = WINDOW_S
    quiet_purposes: frozenset[Purpose] = field(
        default_factory=lambda: frozenset({Purpose.MARKETING, Purpose.UTILITY})
    )


class DecisionKind(enum.Enum):
    SEND_NOW = "send_now"
    DEFER = "defer"
    NEEDS_TEMPLATE = "needs_template"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Decision:
    kind: DecisionKind
    until: float | None = None  # for DEFER: unix seconds
    reason: str = ""


SEND_NOW = Decision(DecisionKind.SEND_NOW)

# Consent: a callable (customer, purpose) -> bool, or data {customer: {purposes}}.
Consent = Callable[[str, Purpose], bool] | Mapping[str, Collection[Purpose]]


def has_consent(consent: Consent, customer: str, purpose: Purpose) -> bool:
    if callable(consent):
        return bool(consent(customer, purpose))
    return purpose in consent.get(customer, ())


def quiet_end(now: float, tz: ZoneInfo, quiet: QuietHours | None) -> float | None:
    """End of the quiet period containing ``now`` (unix s), or ``None`` if not quiet.

    Computed on local wall time so a DST change moves the end with the clock on the wall.
    """
    if quiet is None or quiet.start == quiet.end:
        return None
    local = datetime.fromtimestamp(now, tz)
    t = local.time()
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        end_date = local.date()
    else:
        inside = t >= quiet.start or t < quiet.end
        end_date = local.date() + timedelta(days=1) if t >= quiet.start else local.date()
    if not inside:
        return None
    return max(now, datetime.combine(end_date, quiet.end, tzinfo=tz).timestamp())


def _cap_release(now: float, sent_at: Sequence[float], cap: FrequencyCap) -> float | None:
    recent = sorted(t for t in sent_at if now - cap.period_s < t <= now)
    if len(recent) < cap.max_messages:
        return None
    # The (len - max + 1)-th oldest must age out before one more fits.
    return recent[len(recent) - cap.max_messages] + cap.period_s


def decide(
    *,
    body: Mapping[str, Any],
    purpose: Purpose,
    customer: str,
    now: float,
    policy: Policy,
    consent: Consent,
    last_inbound_at: float | None,
    marketing_sent_at: Sequence[float] = (),
) -> Decision:
    """Decision for one message body at ``now`` (see the module docstring for the order)."""
    effective = _effective_purpose(body, purpose, policy)
    if isinstance(effective, Decision):
        return effective

    window_open = last_inbound_at is not None and 0 <= now - last_inbound_at < policy.window_s
    window_end = (last_inbound_at + policy.window_s) if last_inbound_at is not None else now
    free_form = messages.is_free_form(body)

    customer_initiated = effective is Purpose.SERVICE and window_open
    if not customer_initiated and not has_consent(consent, customer, effective):
        return Decision(DecisionKind.REFUSE, reason=f"no {effective.value} consent")
    if effective is Purpose.SERVICE and not free_form and not window_open:
        # A service template outside the window is a proactive message: needs consent.
        if not has_consent(consent, customer, Purpose.SERVICE):
            return Decision(DecisionKind.REFUSE, reason="no service consent outside the window")

    if free_form and not window_open:
        return Decision(DecisionKind.NEEDS_TEMPLATE, reason="outside the 24 h customer-service window")

    when, reasons = _release(now, effective, policy, marketing_sent_at)
    if when <= now:
        return SEND_NOW
    if free_form and when >= window_end:
        return Decision(
            DecisionKind.NEEDS_TEMPLATE, reason=f"{' and '.join(reasons)} outlast the 24 h window"
        )
    return Decision(DecisionKind.DEFER, until=when, reason=" and ".join(reasons))


def _effective_purpose(body: Mapping[str, Any], purpose: Purpose, policy: Policy) -> Purpose | Decision:
    """A template's category decides the purpose; an unknown template or a wrong parameter count is refused."""
    ref = messages.template_ref(body)
    if ref is None:
        return purpose
    tpl = policy.templates.get(*ref)
    if tpl is None:
        return Decision(DecisionKind.REFUSE, reason=f"template {ref[0]!r}/{ref[1]!r} is not registered")
    got = messages.template_param_count(body)
    if got != tpl.param_count:
        return Decision(
            DecisionKind.REFUSE,
            reason=f"template {tpl.name!r} takes {tpl.param_count} parameters, got {got}",
        )
    if tpl.category is Category.MARKETING:
        return Purpose.MARKETING
    if purpose is Purpose.SERVICE:
        return _CATEGORY_PURPOSE[tpl.category]
    return purpose


def _release(
    now: float, effective: Purpose, policy: Policy, marketing_sent_at: Sequence[float]
) -> tuple[float, list[str]]:
    """When the message may go (the marketing cap, then quiet hours), and why it waits."""
    when = now
    reasons: list[str] = []
    if effective is Purpose.MARKETING:
        release = _cap_release(now, marketing_sent_at, policy.marketing_cap)
        if release is not None:
            when = release
            reasons.append("marketing frequency cap")
    if effective in policy.quiet_purposes:
        end = quiet_end(when, policy.tz, policy.quiet_hours)
        if end is not None:
            when = end
            reasons.append("quiet hours")
    return when, reasons


@dataclass(frozen=True, slots=True)
class Rules:
    """A :class:`Policy` bound to a consent source: what the outbox worker consults."""

    policy: Policy
    consent: Consent

    def decide(
        self,
        *,
        body: Mapping[str, Any],
        purpose: Purpose,
        customer: str,
        now: float,
        last_inbound_at: float | None,
        marketing_sent_at: Sequence[float] = (),
    ) -> Decision:
        return decide(
            body=body,
            purpose=purpose,
            customer=customer,
            now=now,
            policy=self.policy,
            consent=self.consent,
            last_inbound_at=last_inbound_at,
            marketing_sent_at=marketing_sent_at,
        )
