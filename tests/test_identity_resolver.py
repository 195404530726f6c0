"""IdentityResolver: a window's ids resolved in one batch, answers kept while `now` stays the same."""

from __future__ import annotations

from gateway.engines.eid import compute_eid
from gateway.ingest.identities import IdentityResolver
from gateway.storage.customers import Identity

K = 4  # EIDs rotate every 16 s: a few seconds' steps cross boundaries
EPOCH = 1_700_000_000
KEYS = {f"c{i}": bytes([i + 1]) * 16 for i in range(3)}
BADGE = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:7"


def _resolver() -> IdentityResolver:
    ids = [Identity(cid, "eid", key.hex(), K, EPOCH) for cid, key in KEYS.items()]
    return IdentityResolver([*ids, Identity("staff", "ibeacon", BADGE)])


def _seen(cid: str, t: float) -> str:
    return "eid:" + compute_eid(KEYS[cid], K, int(t) - EPOCH).hex()


def test_a_batch_answers_as_one_id_at_a_time_across_rotations() -> None:
    batch, single = _resolver(), _resolver()
    for t in (EPOCH + 100.0, EPOCH + 111.5, EPOCH + 112.0, EPOCH + 130.0, EPOCH + 200.0):
        ids = [_seen("c0", t), BADGE, _seen("c2", t), "eid:" + "00" * 8, _seen("c0", t), "ibeacon:x:1:1"]
        ids.append(_seen("c1", t - 40))  # an EID two periods old: not accepted
        got = batch.resolve_many(ids, t)
        assert got == [single.resolve(i, t) for i in ids]
        assert got[:6] == ["c0", "staff", "c2", None, "c0", None] and got[6] is None


def test_forgetting_or_adding_within_the_same_second_is_seen_at_once() -> None:
    r = _resolver()
    t = EPOCH + 50.0
    seen = _seen("c1", t)
    assert r.resolve_many([seen, BADGE], t) == ["c1", "staff"]
    r.forget("c1")
    r.forget("staff")
    assert r.resolve_many([seen, BADGE], t) == [None, None]  # not answered from what was kept
    r.add(Identity("c1", "eid", KEYS["c1"].hex(), K, EPOCH))
    assert r.resolve_many([seen], t) == ["c1"]
