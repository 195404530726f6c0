"""Restart without re-announcing: who is in the store, where, and who claimed them survive a
gateway restart (the process killed, a new one on the same database); erasure and consent
withdrawal remove what was kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import staff
from gateway.storage.auth import create_staff
from gateway.storage.consent import ConsentHooks, erase_customer, set_consent
from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE
from tests.test_presence import _path

IN_AND_BROWSE = [(0.0, (10.0, -6.0)), (4.0, (10.0, -1.0)), (6.0, (10.0, 1.0)), (12.0, (10.0, 5.0)),
                 (400.0, (10.0, 5.0))]  # in through the door, then browsing on the floor


def _enrol(db_path: Path, customers: tuple[str, ...]) -> None:
    db = open_db(db_path)
    for n, cid in enumerate(customers):
        add_customer(db, cid, f"Customer {cid}", now=0.0)
        record_consent(db, cid, "recognition", True, now=0.0, method="test", wording="test")
        link_identity(db, Identity(cid, "eid", f"{n + 1:02x}" * 16, 10, 0))
    create_staff(db, "ana", "correct horse battery", "associate", now=0.0)
    db.conn.close()


def _gateway(db_path: Path, t: float) -> GatewayCore:
    """A gateway process starting at `t` on the database a previous one was killed over."""
    return GatewayCore(load_store(BOUTIQUE), open_db(db_path), clock=lambda: t)


def _feed(core: GatewayCore, people: dict[str, list], t0: float, t1: float, offset_db: float = 0.0) -> list:
    """Every node reports a window each second, as in tests/test_presence.py, through the core's
    event path (`on_ble` minus the beacon resolution): the staff events it emits."""
    m = core.presence.model
    out = []
    t = t0
    while t < t1:
        for j, node in enumerate(m.node_ids):
            tw = t + (j + 1) / (len(m.node_ids) + 1)
            heard = {}
            for who, pts in people.items():
                if pts[0][0] <= tw <= pts[-1][0]:
                    k = m.state_at(*_path(pts, tw), offset_db)
                    if m._hit_t[j, m.emit[k]] > 0:
                        heard[who] = float(m.mu_heard[k, j])
            out += [core.emit(ev) for ev in core.presence.add_window(node, tw, heard)]
        t += 1.0
    return out


def test_a_restart_mid_visit_announces_nobody_again_and_keeps_zone_and_claim(tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice",))
    first = _gateway(db_path, 0.0)
    events = _feed(first, {"alice": IN_AND_BROWSE}, 0.0, 40.0)
    assert [e.kind for e in events if e.kind != "zone_changed"] == ["entered"]
    assert first.presence.present() == {"alice": "floor"}
    staff.claim(first.db, "customer:alice", 1, now=30.0)
    del first  # killed: nothing is written on the way down

    second = _gateway(db_path, 45.0)
    assert second.presence.present() == {"alice": "floor"}  # before a single window is heard
    events += _feed(second, {"alice": IN_AND_BROWSE}, 45.0, 120.0)
    assert sum(e.kind == "entered" for e in events) == 1
    assert second.presence.present() == {"alice": "floor"}
    shown = staff.present_now(second.db, second.presence.present())
    assert shown == [{"customer_id": "alice", "name": "Customer alice", "zone": "floor", "claimed_by": "ana"}]


def test_someone_who_left_while_the_gateway_was_down_is_reported_left_not_entered(tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice",))
    first = _gateway(db_path, 0.0)
    story = IN_AND_BROWSE[:4] + [(30.0, (10.0, 5.0)), (38.0, (10.0, 1.0)), (40.0, (10.0, -1.5)), (55.0, (28.0, -1.5))]
    events = _feed(first, {"alice": story}, 0.0, 30.0)
    del first  # down from 30 s to 45 s: she walks out meanwhile
    second = _gateway(db_path, 45.0)
    later = _feed(second, {"alice": story}, 45.0, 80.0)
    assert [e.kind for e in events + later if e.kind != "zone_changed"] == ["entered", "left"]
    assert later[-1].ts <= 60.0  # the last readings on the pavement, then silence
    assert second.db.execute("SELECT COUNT(*) FROM presence_state").fetchone()[0] == 0


def test_a_restarted_gateway_still_reports_the_left_of_a_phone_that_fell_silent(tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice",))
    first = _gateway(db_path, 0.0)
    _feed(first, {"alice": IN_AND_BROWSE}, 0.0, 30.0)
    second = _gateway(db_path, 30.0)  # the nodes report on, but alice's phone is never heard again
    later = _feed(second, {}, 30.0, 30.0 + second.presence.model.params.forget_after_s + 5)
    assert [(e.kind, e.customer_id) for e in later] == [("left", "alice")]
    assert second.presence.present() == {}


@pytest.mark.parametrize("how", ["withdraw", "erase"])
def test_consent_withdrawal_and_erasure_remove_the_kept_presence_at_once(tmp_path: Path, how: str) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice", "bob"))
    core = _gateway(db_path, 0.0)
    _feed(core, {"alice": IN_AND_BROWSE, "bob": IN_AND_BROWSE}, 0.0, 30.0)
    rows = lambda: [r[0] for r in core.db.execute("SELECT customer_id FROM presence_state ORDER BY 1")]  # noqa: E731
    assert rows() == ["alice", "bob"]
    if how == "withdraw":
        set_consent(core.db, core, ConsentHooks(), "alice", "recognition", False, now=31.0, method="test", wording="")
    else:
        assert erase_customer(core.db, core, ConsentHooks(), "alice")
    assert rows() == ["bob"]
    assert set(_gateway(db_path, 40.0).presence.present()) == {"bob"}


def test_a_row_for_a_zone_the_store_no_longer_has_is_dropped_not_restored(tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice",))
    db = open_db(db_path)
    db.execute("INSERT INTO presence_state VALUES ('alice', 'old-corner', 1.0, 1.0, 1)")
    core = _gateway(db_path, 10.0)
    assert core.presence.present() == {}
    assert core.db.execute("SELECT COUNT(*) FROM presence_state").fetchone()[0] == 0


def test_a_restored_belief_is_concentrated_in_the_kept_zone(tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    _enrol(db_path, ("alice",))
    db = open_db(db_path)
    db.execute("INSERT INTO presence_state VALUES ('alice', 'fr2', 1.0, 5.0, 1)")
    eng = _gateway(db_path, 10.0).presence
    m = eng.model
    zone_post = eng.belief[eng.index["alice"]] @ m.membership
    assert zone_post[m.z_index["fr2"]] == pytest.approx(1 - m.params.restore_doubt, abs=0.01)
    assert eng.p_in[0] > m.params.enter_probability and eng.entered_at[0] == 1.0 and eng.zone_since[0] == 5.0
    assert np.isclose(eng.belief.sum(), 1.0, atol=1e-5)
