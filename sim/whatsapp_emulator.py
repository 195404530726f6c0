"""A local stand-in for the WhatsApp Cloud API (FastAPI), run on loopback in tests and benches.

Sends with Meta's error codes, signed status and inbound webhooks, the Catalog Batch API, and
test-only endpoints under ``/_emulator/`` (a by-key lookup, per-key counts, error injection).
What it imitates and where it differs on purpose: docs/whatsapp.md, "The Cloud API emulator".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from cloud_sync import messages, signature
from cloud_sync.ratelimit import TokenBucket
from cloud_sync.rules import Template, TemplateRegistry

WEBHOOK_TIMEOUT_S = 5.0  # Meta gives a receiver a few seconds before it counts as failed
WEBHOOK_RETRY_DELAYS_S = (0.2, 1.0)  # Meta retries failed deliveries (for hours; we: twice)
# Webhook posts in flight at once, each on a kept-alive connection: more only grows httpx's pool,
# whose bookkeeping costs O(waiting x connections) per request and closes surplus connections.
WEBHOOK_CONNECTIONS = 4


@dataclass
class EmulatorConfig:
    access_token: str = "test-access-token"
    app_secret: str = "test-app-secret"
    phone_number_ids: Sequence[str] = ("106540352242922",)
    display_phone_number: str = "15550783881"
    waba_id: str = "102290129340398"
    templates: Sequence[Template] = ()
    webhook_url: str | None = None
    webhook_delay_s: tuple[float, float] = (0.05, 0.3)  # per status step, uniform
    auto_read: bool = True  # customers read what they get (posts a "read" status)
    webhook_repeat: int = 1  # >1: deliver every webhook that many times, as Meta may
    throughput_per_s: float = 80.0  # Meta's default per business number
    throughput_burst: float | None = None  # bucket capacity; default one second's worth
    pair_interval_s: float | None = None  # set (e.g. 6.0) to enforce 131056
    window_s: float = 24 * 3600.0
    enforce_window: bool = True
    window_error: str = "async"  # "async" (like Meta) or "sync"
    seed: int | None = None
    clock: Callable[[], float] = field(default=time.time)


def _error_body(code: int, message: str, details: str, subcode: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("="),
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


# Titles for errors the emulator reports (title is informational; logic keys on the code).
TITLES = {
    100: "Invalid parameter",
    190: "Invalid OAuth access token",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "User has stopped marketing messages from this business",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    1: "API Unknown",
    2: "API Service",
}
SYNC_HTTP_STATUS = {190: 401, 1: 500, 2: 503, 131000: 500}  # everything else: 400


class Emulator:
    """State and behaviour behind the FastAPI routes (one per app)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.registry = TemplateRegistry(config.templates)
        self.rng = random.Random(config.seed)
        self._http: httpx.AsyncClient | None = None  # one pooled client for all webhook posts
        self._posting: asyncio.Semaphore | None = None  # bounds posts in flight to the pool size
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        cap = cfg.throughput_burst if cfg.throughput_burst is not None else max(1.0, cfg.throughput_per_s)
        now = cfg.clock()
        self.buckets = {p: TokenBucket(cfg.throughput_per_s, cap, now=now) for p in cfg.phone_number_ids}
        self.last_inbound: dict[str, float] = {}
        self.last_sent_to: dict[str, float] = {}
        self.sent: dict[str, dict[str, Any]] = {}  # wamid -> record
        self.per_key: Counter[str] = Counter()
        self.ids_by_key: dict[str, list[str]] = {}
        self.rejected: Counter[int] = Counter()
        self.inbound_count = 0
        self.read_marks = 0
        self.injected: deque[dict[str, Any]] = deque()
        self.webhooks_posted = 0
        self.webhooks_failed = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.catalogue: dict[str, dict[str, dict[str, Any]]] = {}  # catalog id -> retailer id -> item
        self.catalogue_batches = 0
        self.injected_catalogue: deque[dict[str, Any]] = deque()

    # -- helpers
    def new_wamid(self) -> str:
        return "wamid." + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")

    def envelope(self, pnid: str, value: dict[str, Any]) -> dict[str, Any]:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.config.display_phone_number, "phone_number_id": pnid},
            **value,
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.config.waba_id, "changes": [{"field": "messages", "value": value}]}],
        }

    def error(self, code: int, details: str, *, subcode: int | None = None, status: int | None = None):
        self.rejected[code] += 1
        return JSONResponse(
            _error_body(code, TITLES.get(code, "Error"), details, subcode),
            status_code=status or SYNC_HTTP_STATUS.get(code, 400),
        )

    def status_payload(
        self, pnid: str, rec: dict[str, Any], status: str, errors: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        st: dict[str, Any] = {
            "id": rec["id"],
            "status": status,
            "timestamp": str(int(self.config.clock())),
            "recipient_id": rec["to"],
        }
        if rec.get("key") is not None:
            st["biz_opaque_callback_data"] = rec["key"]
        if status in ("sent", "delivered") and rec["category"] is not None:
            st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": rec["category"]}
        if errors:
            st["errors"] = errors
        return self.envelope(pnid, {"statuses": [st]})

    # -- webhooks
    async def post_webhook(self, payload: dict[str, Any]) -> int | None:
        url = self.config.webhook_url
        if url is None:
            return None
        raw = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            signature.HEADER: signature.sign(raw, self.config.app_secret),
        }
        if self._http is None or self._posting is None:
            limits = httpx.Limits(max_connections=WEBHOOK_CONNECTIONS, max_keepalive_connections=WEBHOOK_CONNECTIONS)
            self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S, limits=limits)
            self._posting = asyncio.Semaphore(WEBHOOK_CONNECTIONS)
        status: int | None = None
        for _ in range(max(1, self.config.webhook_repeat)):
            for delay in (0.0, *WEBHOOK_RETRY_DELAYS_S):
                if delay:
                    await asyncio.sleep(delay)
                try:
                    async with self._posting:
                        status = (await self._http.post(url, content=raw, headers=headers)).status_code
                except httpx.HTTPError:
                    status = None
                if status == 200:
                    self.webhooks_posted += 1
                    break
            else:
                self.webhooks_failed += 1
        return status

    async def _status_sequence(self, pnid: str, rec: dict[str, Any], steps: list[tuple[str, Any]]) -> None:
        lo, hi = self.config.webhook_delay_s
        for status, errors in steps:
            await asyncio.sleep(self.rng.uniform(lo, hi))
            rec["status"] = status
            await self.post_webhook(self.status_payload(pnid, rec, status, errors))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def error_object(self, code: int, details: str) -> dict[str, Any]:
        title = TITLES.get(code, "Error")
        return {"code": code, "title": title, "message": title, "error_data": {"details": details}}

    # -- sending
    async def send(self, version: str, pnid: str, request: Request) -> JSONResponse:
        """Answer like the Cloud API, in its order: caller, body, injected faults, validity, limits, window."""
        refused = self._caller_refused(pnid, request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
        except ClientDisconnect:  # the sender died mid-request (crash tests): nothing was sent
            return JSONResponse({}, status_code=400)
        except ValueError:
            return self.error(100, "Request body is not valid JSON")
        if self.injected and (self.injected[0].get("to") in (None, body.get("to"))):
            return self._inject(pnid, body)
        try:
            messages.validate(body)
        except messages.MessageError as exc:
            return self.error(100, str(exc))
        if body.get("status") == "read":
            self.read_marks += 1
            return JSONResponse({"success": True})
        now = self.config.clock()
        refused = self._limits_refused(pnid, body, now)
        return refused if refused is not None else self._accept_in_window(pnid, body, now)

    def _caller_refused(self, pnid: str, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization", "") != f"Bearer {self.config.access_token}":
            return self.error(190, "Invalid OAuth 2.0 Access Token")
        if pnid not in self.buckets:
            return self.error(100, f"Unsupported post request. Object with ID '{pnid}' does not exist", subcode=33)
        return None

    def _inject(self, pnid: str, body: dict[str, Any]) -> JSONResponse:
        """The next injected fault: an error answer (sync) or an accepted send that fails later."""
        inj = self.injected.popleft()
        if inj.get("mode", "sync") == "sync":
            return self.error(
                inj["code"],
                inj.get("details", "injected"),
                subcode=inj.get("subcode"),
                status=inj.get("http_status"),
            )
        return self.accept(pnid, body, fail=self.error_object(inj["code"], inj.get("details", "injected")))

    def _limits_refused(self, pnid: str, body: dict[str, Any], now: float) -> JSONResponse | None:
        """Throughput per number, the template's registration and parameters, the pair rate."""
        cfg = self.config
        if self.buckets[pnid].take(now) > 0:
            return self.error(130429, f"Rate limit of {cfg.throughput_per_s:g} messages/s per number reached")
        ref = messages.template_ref(body)
        tpl = self.registry.get(*ref) if ref is not None else None
        if ref is not None and tpl is None:
            return self.error(132001, f"template name ({ref[0]}) does not exist in {ref[1]}")
        got = messages.template_param_count(body)
        if tpl is not None and got != tpl.param_count:
            return self.error(
                132000,
                f"body: number of localizable_params ({got}) does not match the "
                f"expected number of params ({tpl.param_count})",
            )
        last = self.last_sent_to.get(body["to"])
        if cfg.pair_interval_s is not None and last is not None and now - last < cfg.pair_interval_s:
            return self.error(131056, f"Too many messages to {body['to']} in a short time")
        return None

    def _accept_in_window(self, pnid: str, body: dict[str, Any], now: float) -> JSONResponse:
        """Free-form messages outside the customer's 24 h window fail (at once or by webhook)."""
        cfg = self.config
        last_in = self.last_inbound.get(body["to"])
        if not (cfg.enforce_window and messages.is_free_form(body)) or (
            last_in is not None and now - last_in < cfg.window_s
        ):
            return self.accept(pnid, body, fail=None)
        details = (
            "Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number."
        )
        if cfg.window_error == "sync":
            return self.error(131047, details)
        return self.accept(pnid, body, fail=self.error_object(131047, details))

    def accept(self, pnid: str, body: dict[str, Any], *, fail: dict[str, Any] | None) -> JSONResponse:
        now = self.config.clock()
        to = str(body.get("to"))
        key = body.get("biz_opaque_callback_data")
        ref = messages.template_ref(body) if isinstance(body.get("template"), dict) else None
        tpl = self.registry.get(*ref) if ref else None
        last_in = self.last_inbound.get(to)
        in_window = last_in is not None and now - last_in < self.config.window_s
        category = tpl.category.value.lower() if tpl else ("service" if in_window else None)
        wamid = self.new_wamid()
        rec = {
            "id": wamid,
            "to": to,
            "key": key,
            "type": body.get("type"),
            "at": now,
            "status": "accepted",
            "category": category,
            "body": body,
        }
        self.sent[wamid] = rec
        self.last_sent_to[to] = now
        if fail is None and key is not None:
            self.per_key[key] += 1
            self.ids_by_key.setdefault(key, []).append(wamid)
        steps: list[tuple[str, Any]]
        if fail is not None:
            steps = [("failed", [fail])]
        else:
            steps = [("sent", None), ("delivered", None)] + ([("read", None)] if self.config.auto_read else [])
        self.spawn(self._status_sequence(pnid, rec, steps))
        out: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
        if body.get("type") == "template":
            out["messages"][0]["message_status"] = "accepted"
        return JSONResponse(out)

    # -- catalogue (Catalog Batch API)
    async def items_batch(self, catalog_id: str, request: Request) -> JSONResponse:
        """``POST /{catalog_id}/items_batch``: UPDATE (upsert) / CREATE / DELETE product items."""
        if request.headers.get("authorization", "") != f"Bearer {self.config.access_token}":
            return self.error(190, "Invalid OAuth 2.0 Access Token")
        if self.injected_catalogue:
            inj = self.injected_catalogue.popleft()
            return self.error(inj["code"], inj.get("details", "injected"), status=inj.get("http_status"))
        try:
            body = json.loads(await request.body())
        except (ValueError, ClientDisconnect):
            return self.error(100, "Request body is not valid JSON")
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not 1 <= len(reqs) <= 5000:
            return self.error(100, "requests: a list of 1..5000 requests is required")
        if body.get("item_type", "PRODUCT_ITEM") != "PRODUCT_ITEM":
            return self.error(100, "item_type: only PRODUCT_ITEM is emulated")
        items = self.catalogue.setdefault(catalog_id, {})
        for i, r in enumerate(reqs):
            problem = _batch_request_problem(i, r)
            if problem is not None:
                return self.error(100, problem)
        _apply_batch(items, reqs, body.get("allow_upsert", True))
        self.catalogue_batches += 1
        return JSONResponse({"handles": [base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")]})

    # -- simulated customer
    async def inbound(self, spec: dict[str, Any]) -> JSONResponse:
        sender = str(spec.get("from", ""))
        if not sender.isdigit():
            return JSONResponse({"error": "from: E.164 digits required"}, status_code=422)
        pnid = str(spec.get("phone_number_id") or self.config.phone_number_ids[0])
        now = self.config.clock()
        msg: dict[str, Any] = {"from": sender, "id": self.new_wamid(), "timestamp": str(int(now))}
        if "text" in spec:
            msg.update(type="text", text={"body": str(spec["text"])})
        elif "button" in spec:
            b = spec["button"]
            msg.update(type="button", button={"payload": b.get("payload", ""), "text": b.get("text", "")})
        elif "interactive" in spec:
            i = spec["interactive"]
            kind = i.get("type", "button_reply")
            if kind not in ("button_reply", "list_reply"):
                return JSONResponse({"error": "interactive.type: button_reply or list_reply"}, status_code=422)
            reply = {"id": i.get("id", ""), "title": i.get("title", "")}
            if kind == "list_reply" and "description" in i:
                reply["description"] = i["description"]
            msg.update(type="interactive", interactive={"type": kind, kind: reply})
        else:
            return JSONResponse({"error": "one of text, button, interactive is required"}, status_code=422)
        if spec.get("context_id"):
            msg["context"] = {"from": self.config.display_phone_number, "id": spec["context_id"]}
        self.last_inbound[sender] = now
        self.inbound_count += 1
        value = {
            "contacts": [{"profile": {"name": spec.get("name", "Customer")}, "wa_id": sender}],
            "messages": [msg],
        }
        status = await self.post_webhook(self.envelope(pnid, value))
        return JSONResponse({"id": msg["id"], "webhook_status": status})

    def stats(self) -> dict[str, Any]:
        return {
            "accepted": sum(self.per_key.values()),
            "messages_total": len(self.sent),
            "per_key": dict(self.per_key),
            "duplicates": {k: n for k, n in self.per_key.items() if n > 1},
            "rejected": {str(c): n for c, n in self.rejected.items()},
            "inbound": self.inbound_count,
            "read_marks": self.read_marks,
            "webhooks_posted": self.webhooks_posted,
            "webhooks_failed": self.webhooks_failed,
            "webhooks_pending": len(self.tasks),
        }


_AVAILABILITIES = ("in stock", "out of stock", "preorder", "available for order", "discontinued")


def _batch_request_problem(i: int, r: Any) -> str | None:
    """What is wrong with the `i`-th request of a catalogue batch, None if nothing."""
    data = r.get("data") if isinstance(r, dict) else None
    method = r.get("method") if isinstance(r, dict) else None
    if method not in ("CREATE", "UPDATE", "DELETE") or not isinstance(data, dict) or not data.get("id"):
        return f"requests[{i}]: method CREATE|UPDATE|DELETE and data.id are required"
    avail = data.get("availability")
    if avail is not None and avail not in _AVAILABILITIES:
        return f"requests[{i}].data.availability: {avail!r} is not allowed"
    return None


def _apply_batch(items: dict[str, Any], reqs: list[dict[str, Any]], allow_upsert: Any) -> None:
    """Apply a checked batch: DELETE drops an item; CREATE, and UPDATE of a known item or with upsert, merge."""
    for r in reqs:
        rid = str(r["data"]["id"])
        if r["method"] == "DELETE":
            items.pop(rid, None)
        elif r["method"] == "CREATE" or rid in items or allow_upsert:
            items[rid] = {**items.get(rid, {}), **r["data"]}


def create_emulator(config: EmulatorConfig | None = None) -> FastAPI:
    """The emulator app; its state is ``app.state.emulator`` (an :class:`Emulator`)."""
    emu = Emulator(config or EmulatorConfig())
    app = FastAPI(title="WhatsApp Cloud API emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = emu

    @app.post("/{version}/{phone_number_id}/messages")
    async def send(version: str, phone_number_id: str, request: Request) -> JSONResponse:
        return await emu.send(version, phone_number_id, request)

    @app.post("/{version}/{catalog_id}/items_batch")
    async def items_batch(version: str, catalog_id: str, request: Request) -> JSONResponse:
        return await emu.items_batch(catalog_id, request)

    _add_inspection(app, emu)
    _add_controls(app, emu)
    return app


def _add_inspection(app: FastAPI, emu: Emulator) -> None:
    """What tests read back: the catalogue, sent messages, counters, message ids by key."""

    @app.get("/_emulator/catalogue/{catalog_id}")
    async def catalogue(catalog_id: str) -> dict[str, Any]:
        return {"items": emu.catalogue.get(catalog_id, {}), "batches": emu.catalogue_batches}

    @app.get("/_emulator/sent")
    async def sent(to: str) -> dict[str, Any]:
        """Accepted messages to one number, oldest first (with their bodies and last status)."""
        recs = [r for r in emu.sent.values() if r["to"] == to]
        return {"messages": [{k: r[k] for k in ("id", "type", "key", "status", "body", "at")} for r in recs]}

    @app.get("/_emulator/stats")
    async def stats() -> dict[str, Any]:
        return emu.stats()

    @app.get("/_emulator/messages")
    async def by_key(biz_opaque_callback_data: str) -> dict[str, Any]:
        return {"ids": emu.ids_by_key.get(biz_opaque_callback_data, [])}


def _add_controls(app: FastAPI, emu: Emulator) -> None:
    """What tests drive: a customer's message, injected errors, a reset."""

    @app.post("/_emulator/inbound")
    async def inbound(request: Request) -> JSONResponse:
        return await emu.inbound(await request.json())

    @app.post("/_emulator/errors", response_model=None)
    async def inject(request: Request) -> dict[str, Any] | JSONResponse:
        spec = await request.json()
        if not isinstance(spec.get("code"), int) or spec.get("mode", "sync") not in ("sync", "async"):
            return JSONResponse({"error": "code (int) and mode sync|async required"}, status_code=422)
        queue = emu.injected_catalogue if spec.get("endpoint") == "items_batch" else emu.injected
        for _ in range(int(spec.get("count", 1))):
            queue.append(spec)
        return {"queued": len(emu.injected)}

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, Any]:
        for task in list(emu.tasks):
            task.cancel()
        emu.reset()
        return {"ok": True}


# --- Running on loopback ----------------------------------------------------------------------


class ServerThread:
    """Any ASGI app served by uvicorn in a daemon thread on a loopback port (0 = a free one).

    uvicorn binds the port itself: handing it a pre-bound socket made every request on
    loopback take ~40 ms here (Nagle/delayed-ACK), binding port 0 in uvicorn does not.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ValueError("host: loopback only")
        self.host, self.port = host, port
        cfg = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            access_log=False,
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
    """Start the emulator on loopback in a background thread; ``.url`` is its base URL."""
    return ServerThread(create_emulator(config), host, port).start()


def main(argv: Sequence[str] | None = None) -> int:
    from cloud_sync.outbox import _parse_templates

    ap = argparse.ArgumentParser(prog="python -m sim.whatsapp_emulator", description="WhatsApp Cloud API emulator")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--token", default=EmulatorConfig.access_token)
    ap.add_argument("--app-secret", default=EmulatorConfig.app_secret)
    ap.add_argument("--phone-number-id", default=EmulatorConfig.phone_number_ids[0])
    ap.add_argument("--webhook-url", default=None)
    ap.add_argument("--templates", default="", help="name:lang:CATEGORY:params,...")
    ap.add_argument("--rate", type=float, default=80.0, help="throughput limit per number (msg/s)")
    args = ap.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        ap.error("--host: loopback only")
    cfg = EmulatorConfig(
        access_token=args.token,
        app_secret=args.app_secret,
        phone_number_ids=(args.phone_number_id,),
        webhook_url=args.webhook_url,
        templates=_parse_templates(args.templates),
        throughput_per_s=args.rate,
    )
    uvicorn.run(create_emulator(cfg), host=args.host, port=args.port, log_level="info", lifespan="off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
