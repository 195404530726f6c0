"""The client against the emulator over real HTTP on loopback: every error code path."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cloud_sync import messages as m
from cloud_sync.errors import Action
from cloud_sync.events import InboundMessage, StatusEvent
from cloud_sync.webhook import WebhookHandlers
from sim.whatsapp_harness import Stack

TO = "491701234567"


class Collector:
    def __init__(self) -> None:
        self.statuses: list[StatusEvent] = []
        self.messages: list[InboundMessage] = []

    def handlers(self) -> WebhookHandlers:
        return WebhookHandlers(on_status=self.statuses.append, on_message=self.messages.append)

    def wait_statuses(self, n: int, timeout_s: float = 5.0) -> list[StatusEvent]:
        deadline = time.monotonic() + timeout_s
        while len(self.statuses) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.statuses


COLLECTOR = Collector()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(handlers=COLLECTOR.handlers()) as s:
        s.emulator.config.webhook_delay_s = (0.01, 0.03)
        yield s


@pytest.fixture(autouse=True)
def fresh(stack: Stack) -> Iterator[None]:
    cfg = stack.emulator.config
    saved = (cfg.throughput_per_s, cfg.pair_interval_s, cfg.window_error)
    stack.http.post(f"{stack.url}/_emulator/reset")
    COLLECTOR.statuses.clear()
    COLLECTOR.messages.clear()
    yield
    cfg.throughput_per_s, cfg.pair_interval_s, cfg.window_error = saved
    stack.http.post(f"{stack.url}/_emulator/reset")


def test_template_success_shape_and_status_webhooks(stack: Stack) -> None:
    with stack.client() as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["A1"], callback_data="evt-1"))
    assert res.ok and res.message_id.startswith("wamid.") and res.wa_id == TO
    assert res.message_status == "accepted"
    sts = COLLECTOR.wait_statuses(3)
    assert [s.status for s in sts] == ["sent", "delivered", "read"]
    assert {s.message_id for s in sts} == {res.message_id}
    assert {s.callback_data for s in sts} == {"evt-1"}
    assert stack.stats()["per_key"] == {"evt-1": 1}


def test_free_form_after_inbound_opens_window(stack: Stack) -> None:
    got = stack.inbound(**{"from": TO, "text": "Ist meine Bestellung da?", "name": "Anna"})
    assert got["webhook_status"] == 200
    msg = COLLECTOR.messages[0]
    assert (msg.sender, msg.type, msg.text, msg.profile_name) == (
        TO,
        "text",
        "Ist meine Bestellung da?",
        "Anna",
    )
    with stack.client() as c:
        res = c.send(m.text(TO, "Ja, abholbereit."))
        assert res.ok and res.message_status is None
        assert c.mark_read(msg.message_id).ok
        with pytest.raises(m.MessageError, match="^message_id:"):
            c.mark_read("not-a-wamid")  # refused before it leaves
        raw = stack.http.post(
            c.url,
            json={"messaging_product": "whatsapp", "status": "read", "message_id": "x"},
            headers={"Authorization": "Bearer test-access-token"},
        )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == 100
    assert stack.stats()["read_marks"] == 1


def test_free_form_outside_window_fails_async_131047(stack: Stack) -> None:
    with stack.client() as c:
        res = c.send(m.text(TO, "Hallo", callback_data="ff"))
    assert res.ok  # accepted ...
    st = COLLECTOR.wait_statuses(1)[0]  # ... then failed by webhook, like the real API
    assert st.status == "failed" and st.errors[0].code == 131047
    assert st.errors[0].action is Action.NEEDS_TEMPLATE and st.errors[0].source == "status"
    assert stack.stats()["per_key"] == {}


def test_free_form_outside_window_sync_131047(stack: Stack) -> None:
    stack.emulator.config.window_error = "sync"
    with stack.client() as c:
        res = c.send(m.reply_buttons(TO, "?", [("a", "A")]))
    assert res.error.code == 131047 and res.error.action is Action.NEEDS_TEMPLATE
    assert res.error.details.startswith("Message failed to send because more than 24 hours")


def test_wrong_token_190(stack: Stack) -> None:
    with stack.client(token="expired") as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["A1"]))
    e = res.error
    assert (e.code, e.http_status, e.action) == (190, 401, Action.STOP_SENDING_ALERT)


def test_invalid_parameter_100(stack: Stack) -> None:
    body = m.reply_buttons(TO, "?", [("a", "A")])
    body["interactive"]["action"]["buttons"][0]["reply"]["title"] = "x" * 21  # past our builder
    with stack.client() as c:
        res = c.send(body)
    assert (res.error.code, res.error.http_status, res.error.action) == (100, 400, Action.DO_NOT_RETRY)
    assert "interactive.action.buttons[0].reply.title" in res.error.details


def test_unknown_phone_number_100(stack: Stack) -> None:
    from cloud_sync.client import CloudApiClient
    from sim.whatsapp_harness import TOKEN, VERSION

    with CloudApiClient(stack.url, VERSION, "999", TOKEN) as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["A1"]))
    assert (res.error.code, res.error.subcode) == (100, 33)


def test_unknown_template_132001_and_param_mismatch_132000(stack: Stack) -> None:
    with stack.client() as c:
        a = c.send(m.template(TO, "order_ready", "fr", body_params=["A1"]))
        b = c.send(m.template(TO, "order_ready", "de", body_params=["A1", "B2"]))
    assert a.error.code == 132001 and a.error.action is Action.DO_NOT_RETRY
    assert b.error.code == 132000 and b.error.action is Action.DO_NOT_RETRY
    assert stack.stats()["rejected"] == {"132001": 1, "132000": 1}


def test_throughput_130429(stack: Stack) -> None:
    stack.emulator.config.throughput_per_s = 5.0
    stack.http.post(f"{stack.url}/_emulator/reset")
    with stack.client() as c:
        results = [
            c.send(m.template(f"4917000000{i:02d}", "order_ready", "de", body_params=["x"]))
            for i in range(12)
        ]
    codes = [r.error.code for r in results if not r.ok]
    assert 130429 in codes and set(codes) == {130429}
    assert sum(r.ok for r in results) <= 6
    assert next(r.error for r in results if not r.ok).action is Action.RETRY


def test_pair_rate_131056(stack: Stack) -> None:
    stack.emulator.config.pair_interval_s = 6.0
    with stack.client() as c:
        first = c.send(m.template(TO, "order_ready", "de", body_params=["x"]))
        second = c.send(m.template(TO, "order_ready", "de", body_params=["y"]))
        other = c.send(m.template("491709999999", "order_ready", "de", body_params=["z"]))
    assert first.ok and other.ok
    assert second.error.code == 131056 and second.error.action is Action.RETRY_RECIPIENT_LATER


@pytest.mark.parametrize(
    ("code", "http_status", "action"),
    [
        (131048, 400, Action.RETRY),
        (131026, 400, Action.DO_NOT_RETRY),
        (131049, 400, Action.DO_NOT_RETRY),
        (131050, 400, Action.OPT_OUT),
        (131000, 500, Action.RETRY),
        (1, 500, Action.RETRY),
        (2, 503, Action.RETRY),
    ],
)
def test_injected_sync_errors(stack: Stack, code: int, http_status: int, action: Action) -> None:
    stack.inject(code=code, http_status=http_status, details=f"detail {code}")
    with stack.client() as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["x"]))
        after = c.send(m.template(TO, "order_ready", "de", body_params=["x"]))
    assert (res.error.code, res.error.http_status, res.error.action) == (code, http_status, action)
    assert res.error.details == f"detail {code}"
    assert after.ok  # injection is one-shot


@pytest.mark.parametrize("code", [131026, 131049, 131050])
def test_injected_async_errors_arrive_in_status_webhook(stack: Stack, code: int) -> None:
    stack.inject(code=code, mode="async")
    with stack.client() as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["x"], callback_data="a1"))
    assert res.ok
    st = COLLECTOR.wait_statuses(1)[0]
    assert (st.status, st.errors[0].code, st.callback_data) == ("failed", code, "a1")


def test_stats_count_duplicates_per_key(stack: Stack) -> None:
    with stack.client() as c:
        for _ in range(2):
            assert c.send(m.template(TO, "order_ready", "de", body_params=["x"], callback_data="dup")).ok
        assert c.send(m.template(TO, "order_ready", "de", body_params=["x"], callback_data="one")).ok
    s = stack.stats()
    assert s["per_key"] == {"dup": 2, "one": 1} and s["duplicates"] == {"dup": 2}
    ids = stack.http.get(f"{stack.url}/_emulator/messages", params={"biz_opaque_callback_data": "dup"}).json()
    assert len(ids["ids"]) == 2


def test_inbound_button_and_interactive_replies(stack: Stack) -> None:
    stack.inbound(**{"from": TO, "button": {"payload": "PICKUP_OK", "text": "Passt"}})
    stack.inbound(**{"from": TO, "interactive": {"type": "list_reply", "id": "t1", "title": "14:00"}})
    b, i = COLLECTOR.messages
    assert (b.type, b.button_payload, b.button_text) == ("button", "PICKUP_OK", "Passt")
    assert (i.type, i.reply_kind, i.reply_id, i.reply_title) == ("interactive", "list_reply", "t1", "14:00")
    bad = stack.http.post(f"{stack.url}/_emulator/inbound", json={"from": TO})
    assert bad.status_code == 422


def test_connection_refused_is_unambiguous() -> None:
    from cloud_sync.client import CloudApiClient

    with CloudApiClient("http://127.0.0.1:9", "v23.0", "1", "t", timeout_s=1.0) as c:
        res = c.send(m.template(TO, "order_ready", "de", body_params=["x"]))
    assert res.error.code is None and res.error.action is Action.RETRY and not res.error.ambiguous
