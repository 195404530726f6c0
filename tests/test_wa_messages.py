"""Request bodies for every message type, compared with the spec's examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync import messages as m

TO = "491701234567"


def test_text_matches_spec() -> None:
    assert m.text(TO, "Hallo!") == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"preview_url": False, "body": "Hallo!"},
    }


def test_template_matches_spec_example() -> None:
    body = m.template(TO, "order_ready", "de", body_params=["A-1042"], quick_reply_payloads=["OK"])
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_ready",
        "language": {"code": "de"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "A-1042"}]},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": "OK"}],
            },
        ],
    }
    assert m.template_ref(body) == ("order_ready", "de")
    assert m.template_param_count(body) == 1
    assert not m.is_free_form(body)


def test_template_without_params_has_no_components() -> None:
    assert m.template(TO, "hello_world", "en_US")["template"] == {
        "name": "hello_world",
        "language": {"code": "en_US"},
    }


def test_reply_buttons_match_spec() -> None:
    body = m.reply_buttons(TO, "Abholen heute?", [("yes", "Ja"), ("no", "Nein")])
    assert body["interactive"] == {
        "type": "button",
        "body": {"text": "Abholen heute?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "yes", "title": "Ja"}},
                {"type": "reply", "reply": {"id": "no", "title": "Nein"}},
            ]
        },
    }
    assert m.is_free_form(body)


def test_list_matches_spec() -> None:
    body = m.list_message(
        TO,
        "Wann?",
        "Zeiten",
        [m.ListSection("Heute", [m.ListRow("t1", "14:00", "Filiale Mitte"), m.ListRow("t2", "16:00")])],
    )
    assert body["interactive"] == {
        "type": "list",
        "body": {"text": "Wann?"},
        "action": {
            "button": "Zeiten",
            "sections": [
                {
                    "title": "Heute",
                    "rows": [
                        {"id": "t1", "title": "14:00", "description": "Filiale Mitte"},
                        {"id": "t2", "title": "16:00"},
                    ],
                }
            ],
        },
    }


def test_single_product_matches_spec() -> None:
    body = m.product(TO, "cat1", "SKU-42", body="Wieder da")
    assert body["interactive"] == {
        "type": "product",
        "body": {"text": "Wieder da"},
        "action": {"catalog_id": "cat1", "product_retailer_id": "SKU-42"},
    }


def test_multi_product_matches_spec() -> None:
    body = m.product_list(TO, "Neu", "Für dich", "cat1", [m.ProductSection("Schuhe", ["S1", "S2"])])
    assert body["interactive"] == {
        "type": "product_list",
        "header": {"type": "text", "text": "Neu"},
        "body": {"text": "Für dich"},
        "action": {
            "catalog_id": "cat1",
            "sections": [
                {
                    "title": "Schuhe",
                    "product_items": [{"product_retailer_id": "S1"}, {"product_retailer_id": "S2"}],
                }
            ],
        },
    }


def test_mark_read_matches_spec() -> None:
    assert m.mark_read("wamid.ABC") == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.ABC",
    }


def test_callback_data_carried_and_not_overwritten() -> None:
    body = m.text(TO, "x", callback_data="evt-1")
    assert body["biz_opaque_callback_data"] == "evt-1"
    assert m.with_callback_data(body, "evt-1") == body
    with pytest.raises(m.MessageError) as exc:
        m.with_callback_data(body, "evt-2")
    assert exc.value.field == "biz_opaque_callback_data"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: m.text("+491701234567", "x"), "to"),
        (lambda: m.text(TO, ""), "text.body"),
        (lambda: m.text(TO, "x" * 4097), "text.body"),
        (
            lambda: m.reply_buttons(TO, "b", [("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]),
            "interactive.action.buttons",
        ),
        (lambda: m.reply_buttons(TO, "b", [("1", "x" * 21)]), "interactive.action.buttons[0].reply.title"),
        (
            lambda: m.reply_buttons(TO, "b", [("1", "a"), ("1", "b")]),
            "interactive.action.buttons[1].reply.id",
        ),
        (lambda: m.reply_buttons(TO, "b", []), "interactive.action.buttons"),
        (lambda: m.template(TO, "Order Ready", "de"), "template.name"),
        (lambda: m.template(TO, "order_ready", "german"), "template.language.code"),
        (
            lambda: m.list_message(TO, "b", "x" * 21, [m.ListSection("s", [m.ListRow("1", "r")])]),
            "interactive.action.button",
        ),
        (
            lambda: m.list_message(
                TO, "b", "Zeiten", [m.ListSection("s", [m.ListRow(str(i), "r") for i in range(11)])]
            ),
            "interactive.action.sections[0].rows",
        ),
        (
            lambda: m.product_list(TO, "h", "b", "c", [m.ProductSection("s", [f"S{i}" for i in range(31)])]),
            "interactive.action.sections[0].product_items",
        ),
        (lambda: m.text(TO, "x", callback_data="k" * 513), "biz_opaque_callback_data"),
        (lambda: m.mark_read("abc"), "message_id"),
    ],
)
def test_invalid_bodies_name_the_field(build, field: str) -> None:
    with pytest.raises(m.MessageError) as exc:
        build()
    assert exc.value.field == field
    assert str(exc.value).startswith(field + ":")


def test_validate_rejects_unknown_type_and_product() -> None:
    with pytest.raises(m.MessageError, match="^type:"):
        m.validate({"messaging_product": "whatsapp", "to": TO, "type": "sticker"})
    with pytest.raises(m.MessageError, match="^messaging_product:"):
        m.validate({"messaging_product": "sms", "to": TO, "type": "text", "text": {"body": "x"}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "messaging_product",
                "to",
                "type",
                "text",
                "template",
                "interactive",
                "status",
                "message_id",
                "biz_opaque_callback_data",
            ]
        ),
        json_values,
        max_size=6,
    )
)
def test_validate_fuzz_raises_only_message_error(body: dict) -> None:
    try:
        m.validate(body)
    except m.MessageError:
        pass
