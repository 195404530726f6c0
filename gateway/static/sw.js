// instore staff app service worker: keeps the app shell available when the store Wi-Fi blips.
// Pages: network first, the last good copy when offline. APIs and the live stream: never cached
// (stale customer data is worse than none, and the stream resumes by Last-Event-ID itself).
const CACHE = 'instore-shell-v2';
const SHELL = ['/manifest.webmanifest', '/icon.svg', '/icon-192.png', '/icon-512.png', '/apple-touch-icon.png'];

self.addEventListener('install', e => { e.waitUntil(caches.open(CACHE).then(c => c.addAll(SHELL))); self.skipWaiting(); });
self.addEventListener('activate', e => {
  e.waitUntil(caches.keys().then(keys => Promise.all(keys.filter(k => k !== CACHE).map(k => caches.delete(k)))));
  self.clients.claim();
});
self.addEventListener('fetch', e => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin) return;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/pos/') || url.pathname.startsWith('/orders')) return;
  if (e.request.mode === 'navigate' && (url.pathname === '/tablet' || url.pathname === '/')) {
    e.respondWith(fetch(e.request).then(r => {
      if (r.ok && !r.redirected) { const copy = r.clone(); caches.open(CACHE).then(c => c.put('/tablet', copy)); }
      return r;
    }).catch(() => caches.match('/tablet')));
    return;
  }
  if (SHELL.includes(url.pathname)) e.respondWith(caches.match(e.request).then(r => r || fetch(e.request)));
});
self.addEventListener('notificationclick', e => {   // a tap on an alert brings the tablet page forward
  e.notification.close();
  e.waitUntil(self.clients.matchAll({type: 'window'}).then(ws => ws.length ? ws[0].focus() : self.clients.openWindow('/tablet')));
});
