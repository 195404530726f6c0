// Requests from the fitting rooms on the staff tablet: a timed, ringing card at the top of the feed
// until someone says "I'm on it" (the room's screen then shows who is coming) and then "Done".
// Unclaimed past the gateway's escalate_after_s, the card turns urgent and rings again on every tablet.
// Its own container and styles, so the tablet page only includes it (gateway/room_requests.py). Events come
// from the page's one stream: the tablet dispatches them as `instore:event` DOM events (detail: the staff
// event) and `instore:open` on every (re)connect, when the cards are fetched afresh.
(() => {
  'use strict';
  const RING_AGAIN_S = 15;  // an escalated request rings again this often: a missed ring must not be the last
  const css = `
    #room-requests { display: flex; flex-direction: column; gap: 10px; margin: 0 0 14px; }
    #room-requests .rq { display: grid; grid-template-columns: 1fr auto; gap: 6px 12px; align-items: center; padding: 12px 14px;
      border-radius: 10px; background: #fff3d6; border-left: 8px solid #b07a12; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
    #room-requests .rq.claimed { background: #e3f3e6; border-left-color: #1d6a2e; }
    #room-requests .rq.escalated { background: #fde2e1; border-left-color: #a4262c; }
    #room-requests .rq .rq-what { font-weight: 700; font-size: 18px; color: #1f1b16; text-transform: none; letter-spacing: 0; }
    #room-requests .rq .rq-age { font-variant-numeric: tabular-nums; font-weight: 700; font-size: 18px; }
    #room-requests .rq .rq-who { font-size: 15px; font-weight: 400; color: #333; }
    #room-requests .rq button { min-height: 44px; padding: 6px 16px; font: inherit; font-weight: 700; border: 0; border-radius: 8px;
      background: #1d4f91; color: #fff; cursor: pointer; }`;
  const style = document.createElement('style');
  style.textContent = css;
  document.head.appendChild(style);
  const box = document.createElement('section');
  box.id = 'room-requests';
  box.setAttribute('aria-label', t('requests.heading'));
  box.setAttribute('aria-live', 'assertive');
  const slot = document.getElementById('requests');  // the tablet keeps their place at the top of the feed
  const feed = document.getElementById('feed');
  if (slot) slot.appendChild(box);
  else (feed ? feed.parentNode : document.body).insertBefore(box, feed || document.body.firstChild);

  const open = new Map();  // id -> request
  let syncedAt = null;     // the gateway's clock at the last fetch: events up to then are in it (null: fetching)
  const waiting = [];      // events that came while fetching, applied after it
  let offset = 0;          // gateway clock - this tablet's clock (s)
  let escalateAfter = 60;
  let me = null;
  let audio = null;
  window.roomRequestRings = 0;  // rings triggered (tests and the curious can read it)

  function ring(urgent, r) {
    window.roomRequestRings += 1;
    if (window.instoreAlert) {  // on the staff tablet: its own bell, a system notification and the unseen count
      window.instoreAlert('request', t('tablet.notify_request', {room: r.room_name || r.room}), what(r), 'rq:' + r.id, r.id);
      return;
    }
    try {
      audio = audio || new AudioContext();
      for (const [i, f] of (urgent ? [988, 784, 988] : [784, 988]).entries()) {
        const o = audio.createOscillator(), g = audio.createGain(), at = audio.currentTime + i * 0.25;
        o.frequency.value = f; g.gain.setValueAtTime(0.3, at); g.gain.exponentialRampToValueAtTime(0.001, at + 0.22);
        o.connect(g).connect(audio.destination); o.start(at); o.stop(at + 0.22);
      }
    } catch (e) { /* no audio: the card and vibration still show */ }
    if (navigator.vibrate) navigator.vibrate(urgent ? [200, 80, 200, 80, 200] : [150, 60, 150]);
  }

  function what(r) {
    const item = r.product || t('room.garment');
    if (r.size && r.colour) return t('room.what_colour_size', {item, colour: r.colour, size: r.size});
    return r.size ? t('room.what_size', {item, size: r.size}) : item;
  }
  function age(r) { return Math.max(0, Date.now() / 1000 + offset - r.created_at); }
  function mmss(s) { const m = Math.floor(s / 60); return m + ':' + String(Math.floor(s % 60)).padStart(2, '0'); }

  async function post(url) {
    const r = await fetch(url, {method: 'POST'});
    if (r.ok) upsert(await r.json());
  }

  function paint() {
    const rows = [...open.values()].sort((a, b) => a.created_at - b.created_at);
    box.replaceChildren(...rows.map(r => {
      const card = document.createElement('article');
      const late = !r.claimed_by && age(r) >= escalateAfter;
      card.className = 'rq' + (r.claimed_by ? ' claimed' : '') + (late ? ' escalated' : '');
      card.dataset.id = r.id;
      const head = document.createElement('div');
      head.className = 'rq-what';
      const room = r.room_name || r.room;
      head.textContent = r.kind === 'staff' ? t('requests.staff', {room}) : t('requests.bring', {room, what: what(r)});
      const timer = document.createElement('span');
      timer.className = 'rq-age';
      timer.textContent = mmss(age(r));
      const who = document.createElement('div');
      who.className = 'rq-who';
      who.textContent = r.claimed_by ? t('requests.on_it', {name: r.claimed_by_name || r.claimed_by}) : (late ? t('requests.escalated') : t('requests.waiting'));
      const b = document.createElement('button');
      b.type = 'button';
      if (!r.claimed_by) { b.className = 'claim'; b.textContent = t('requests.claim'); b.onclick = () => post('/api/room-requests/' + r.id + '/claim'); }
      else { b.className = 'done'; b.textContent = t('requests.done'); b.onclick = () => post('/api/room-requests/' + r.id + '/done'); }
      b.hidden = !!(r.claimed_by && me && r.claimed_by !== me);
      card.append(head, timer, who, b);
      return card;
    }));
  }

  function upsert(r) {
    if (r.done_at) open.delete(r.id); else open.set(r.id, {...(open.get(r.id) || {}), ...r});
    paint();
  }

  let lastTick = Date.now() / 1000;
  setInterval(() => {  // timers, and escalation: ring again on every tablet while nobody has it
    const now = Date.now() / 1000;
    for (const r of open.values()) {
      const a = age(r), before = a - (now - lastTick);
      if (!r.claimed_by && a >= escalateAfter && Math.floor((a - escalateAfter) / RING_AGAIN_S) !== Math.floor((before - escalateAfter) / RING_AGAIN_S)) ring(true, r);
    }
    lastTick = now;
    paint();
  }, 1000);

  async function resync() {  // on load and after every reconnect (a gateway restart loses nothing: the rows are in its database)
    const before = syncedAt;
    syncedAt = null;
    try {
      const r = await fetch('/api/room-requests');
      if (!r.ok) return;
      const data = await r.json();
      offset = data.now - Date.now() / 1000;
      escalateAfter = data.escalate_after_s;
      open.clear();
      for (const x of data.requests) open.set(x.id, x);
      syncedAt = data.now;
      paint();
    } finally {
      if (syncedAt === null) syncedAt = before;
      if (syncedAt !== null) for (const ev of waiting.splice(0)) apply(ev);
    }
  }

  function apply(ev) {
    if (ev.ts <= syncedAt) return;  // already in the fetched list (the tablet's stream replays its history)
    if (ev.kind !== 'room_request') upsert(ev.data);
    else if (!open.has(ev.data.id)) { upsert(ev.data); ring(false, ev.data); }
  }

  document.addEventListener('instore:event', e => {
    if (!['room_request', 'room_request_claimed', 'room_request_done'].includes(e.detail.kind)) return;
    if (syncedAt === null) waiting.push(e.detail); else apply(e.detail);
  });
  document.addEventListener('instore:open', () => resync().catch(() => {}));
  (async () => {
    try { const r = await fetch('/api/me'); if (r.ok) me = (await r.json()).username; } catch (e) { /* shown without own-claim check */ }
    await resync().catch(() => {});  // the page's stream may have opened before this script ran
  })();
})();
