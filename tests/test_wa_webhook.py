"""Webhook receiver: handshake, signatures, parsing, duplicates, STOP handling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync import events, signature
from cloud_sync.errors import Action
from cloud_sync.events import ErrorEvent, InboundMessage, StatusEvent, WebhookPayloadError
from cloud_sync.webhook import MemoryDeduper, WebhookHandlers, create_webhook_router
from sim.whatsapp_emulator import ServerThread

SECRET = "app-secret"
VERIFY = "verify-me"
TO = "491701234567"


def envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def status(mid: str = "wamid.A", st_: str = "delivered", **extra: Any) -> dict[str, Any]:
    return envelope(
        {
            "statuses": [
                {
                    "id": mid,
                    "status": st_,
                    "timestamp": "1767225600",
                    "recipient_id": TO,
                    "biz_opaque_callback_data": "evt-1",
                    **extra,
                }
            ]
        }
    )


def text_msg(body: str, mid: str = "wamid.IN1") -> dict[str, Any]:
    return envelope(
        {
            "contacts": [{"profile": {"name": "Anna"}, "wa_id": TO}],
            "messages": [
                {"from": TO, "id": mid, "timestamp": "1767225600", "type": "text", "text": {"body": body}}
            ],
        }
    )


class Recorder:
    def __init__(self) -> None:
        self.statuses: list[StatusEvent] = []
        self.messages: list[InboundMessage] = []
        self.errors: list[ErrorEvent] = []
        self.opted_out: set[str] = set()
        self.opt_out_calls: list[str] = []
        self.confirmations: list[str] = []
        self.fail_next = False

    def reset(self) -> None:
        for coll in (
            self.statuses,
            self.messages,
            self.errors,
            self.opted_out,
            self.opt_out_calls,
            self.confirmations,
        ):
            coll.clear()
        self.fail_next = False

    def on_status(self, ev: StatusEvent) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("db down")
        self.statuses.append(ev)

    def on_opt_out(self, wa_id: str) -> bool:
        self.opt_out_calls.append(wa_id)
        was_in = wa_id not in self.opted_out
        self.opted_out.add(wa_id)
        return was_in

    def handlers(self) -> WebhookHandlers:
        return WebhookHandlers(
            on_status=self.on_status,
            on_message=self.messages.append,
            on_error=self.errors.append,
            on_opt_out=self.on_opt_out,
            send_opt_out_confirmation=lambda m: self.confirmations.append(m.sender),
        )


REC = Recorder()
ROUTER = create_webhook_router(app_secret=SECRET, verify_token=VERIFY, handlers=REC.handlers())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = FastAPI()
    app.include_router(ROUTER)
    with ServerThread(app) as s:
        yield s


@pytest.fixture()
def post(server: ServerThread) -> Iterator[Any]:
    REC.reset()
    ROUTER.processor.deduper = MemoryDeduper()  # type: ignore[attr-defined]
    with httpx.Client(base_url=server.url) as http:

        def _post(payload: Any, *, sign: bool = True, raw: bytes | None = None, sig: str | None = None):
            body = raw if raw is not None else json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"}
            if sign:
                headers[signature.HEADER] = sig or signature.sign(body, SECRET)
            return http.post("/webhook", content=body, headers=headers)

        _post.http = http  # type: ignore[attr-defined]
        yield _post


def test_get_handshake(post: Any) -> None:
    ok = post.http.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
    )
    assert (
        ok.status_code == 200
        and ok.text == "1158201444"
        and ok.headers["content-type"].startswith("text/plain")
    )
    bad = post.http.get(
        "/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}
    )
    assert bad.status_code == 403


def test_unsigned_and_bad_signatures_are_401_and_change_nothing(post: Any) -> None:
    body = json.dumps(status()).encode()
    assert post(None, raw=body, sign=False).status_code == 401
    assert post(None, raw=body, sig=signature.sign(body, "wrong")).status_code == 401
    tampered = body.replace(b"delivered", b"delivereD")
    assert post(None, raw=tampered, sig=signature.sign(body, SECRET)).status_code == 401
    assert REC.statuses == []
    assert post(None, raw=body).status_code == 200
    assert len(REC.statuses) == 1


def test_status_parsed_and_duplicates_ignored(post: Any) -> None:
    for _ in range(3):
        assert post(status()).status_code == 200
    assert post(status(st_="read")).status_code == 200
    assert [(s.message_id, s.status, s.callback_data, s.timestamp) for s in REC.statuses] == [
        ("wamid.A", "delivered", "evt-1", 1767225600),
        ("wamid.A", "read", "evt-1", 1767225600),
    ]


def test_handler_failure_is_500_and_redelivery_processed(post: Any) -> None:
    REC.fail_next = True
    assert post(status()).status_code == 500
    assert post(status()).status_code == 200
    assert len(REC.statuses) == 1


def test_malformed_signed_payload_is_400(post: Any) -> None:
    assert post({"object": "page"}).status_code == 400
    assert post(None, raw=b"{not json").status_code == 400
    assert REC.statuses == [] and REC.messages == []


@pytest.mark.parametrize(
    "word",
    [
        "STOP",
        "stop",
        "Stopp!",
        "ARRÊT",
        "arret",
        "Alto",
        "BASTA",
        "  Stop. ",
        "Unsubscribe",
        "stop promotions",
    ],
)
def test_stop_variants_withdraw_consent_and_confirm_once(post: Any, word: str) -> None:
    assert post(text_msg(word)).status_code == 200
    assert post(text_msg(word)).status_code == 200  # Meta redelivers
    assert REC.opted_out == {TO}
    assert REC.confirmations == [TO]
    assert len(REC.messages) == 1


@pytest.mark.parametrize("text", ["please don't stop", "stop by tomorrow?", "Bestellung stornieren", "Hallo"])
def test_non_stop_texts_do_nothing(post: Any, text: str) -> None:
    post(text_msg(text))
    assert REC.opted_out == set() and REC.confirmations == []


def test_second_stop_after_opt_out_not_confirmed_again(post: Any) -> None:
    post(text_msg("STOP", mid="wamid.S1"))
    post(text_msg("stop", mid="wamid.S2"))
    assert REC.opt_out_calls == [TO, TO]
    assert REC.confirmations == [TO]


def test_marketing_opt_out_button(post: Any) -> None:
    payload = envelope(
        {
            "messages": [
                {
                    "from": TO,
                    "id": "wamid.B1",
                    "timestamp": "1767225600",
                    "type": "button",
                    "button": {"payload": "STOP_MARKETING", "text": "Angebote stoppen"},
                }
            ]
        }
    )
    post(payload)
    assert REC.opted_out == {TO} and REC.confirmations == [TO]


def test_131050_in_status_withdraws_consent_without_confirmation(post: Any) -> None:
    err = {
        "code": 131050,
        "title": "User has stopped marketing",
        "message": "m",
        "error_data": {"details": "d"},
    }
    post(status(st_="failed", errors=[err]))
    assert REC.statuses[0].errors[0].action is Action.OPT_OUT
    assert REC.opted_out == {TO} and REC.confirmations == []


def test_value_level_errors_dispatched(post: Any) -> None:
    post(envelope({"errors": [{"code": 131000, "title": "Something went wrong", "message": "x"}]}))
    assert REC.errors[0].error.code == 131000 and REC.errors[0].error.source == "value"


def test_parse_order_and_interactive_and_message_errors() -> None:
    evs = events.parse(
        envelope(
            {
                "messages": [
                    {
                        "from": TO,
                        "id": "wamid.O",
                        "timestamp": "1767225600",
                        "type": "order",
                        "order": {
                            "catalog_id": "c",
                            "product_items": [
                                {
                                    "product_retailer_id": "SKU1",
                                    "quantity": 2,
                                    "item_price": 49.9,
                                    "currency": "EUR",
                                }
                            ],
                        },
                    },
                    {
                        "from": TO,
                        "id": "wamid.I",
                        "timestamp": "1767225601",
                        "type": "interactive",
                        "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Ja"}},
                    },
                    {
                        "from": TO,
                        "id": "wamid.U",
                        "timestamp": "1767225602",
                        "type": "unsupported",
                        "errors": [{"code": 131051, "title": "Unsupported message type"}],
                    },
                ]
            }
        )
    )
    order, reply, unsupported = evs
    assert order.order == (events.OrderItem("SKU1", 2, 49.9, "EUR"),)
    assert (reply.reply_kind, reply.reply_id, reply.reply_title) == ("button_reply", "yes", "Ja")
    assert unsupported.errors[0].code == 131051 and unsupported.errors[0].source == "message"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (status(st_="exploded"), "entry[0].changes[0].value.statuses[0].status"),
        (status(timestamp="yesterday"), "entry[0].changes[0].value.statuses[0].timestamp"),
        ({"object": "whatsapp_business_account", "entry": {}}, "entry"),
    ],
)
def test_parse_errors_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(WebhookPayloadError) as exc:
        events.parse(payload)
    assert exc.value.field == field


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "status",
                    "timestamp",
                    "from",
                    "type",
                    "text",
                    "body",
                    "statuses",
                    "messages",
                    "errors",
                    "code",
                    "interactive",
                    "button",
                    "order",
                    "product_items",
                    "changes",
                    "value",
                    "field",
                    "entry",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(json_values)
def test_parse_fuzz_only_raises_payload_errors(value: Any) -> None:
    for payload in (
        value,
        envelope({"statuses": value}),
        envelope({"messages": value}),
        {"object": "whatsapp_business_account", "entry": value},
    ):
        try:
            events.parse(payload)
        except WebhookPayloadError:
            pass


def test_a_batch_is_handled_item_by_item_unknown_status_skipped(post: Any) -> None:
    batch = envelope(
        {
            "statuses": [
                {"id": "wamid.P", "status": "played", "timestamp": "1767225600", "recipient_id": TO},
                {"id": "wamid.D", "status": "delivered", "timestamp": "1767225601", "recipient_id": TO},
                "not an object either",
            ],
            "messages": [
                {"from": TO, "id": "wamid.T", "timestamp": "1767225602", "type": "text", "text": "no body"},
                {"from": TO, "id": "wamid.OK", "timestamp": "1767225603", "type": "text", "text": {"body": "hi"}},
            ],
        }
    )
    batch["entry"][0]["changes"][0]["value"]["statuses"].pop()  # (a list of objects is the envelope's rule)
    r = post(batch)
    assert r.status_code == 200 and "2 skipped" in r.text
    assert [s.message_id for s in REC.statuses] == ["wamid.D"]
    assert [m.message_id for m in REC.messages] == ["wamid.OK"]
    assert ROUTER.processor.skipped >= 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,  # nested beyond the parser's recursion
        json.dumps(envelope({"messages": [{"from": TO, "id": "x", "timestamp": "1", "type": "button",
                                           "button": ["a"]}]})).encode(),
        json.dumps(envelope({"messages": [{"from": TO, "id": "x", "timestamp": "1", "type": "order",
                                           "order": {"product_items": [{"product_retailer_id": "a",
                                                                        "quantity": {}}]}}]})).encode(),
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", '
        b'"value": {"metadata": [], "statuses": [{"id": "x", "status": "sent", "timestamp": 1e999}]}}]}]}',
    ],
)
def test_oddly_shaped_signed_bodies_are_4xx_or_skipped_never_500(post: Any, raw: bytes) -> None:
    r = post(None, raw=raw)
    assert r.status_code in (200, 400), r.text
    assert REC.statuses == [] and REC.messages == []
