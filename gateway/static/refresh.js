// Fresh figures every {{refresh_s}} s without reloading the page (a reload would move focus and scroll):
// the same page is fetched again and its <main> swapped in, only while the page is in view.
setInterval(async () => {
  if (document.visibilityState !== 'visible') return;
  try {
    const r = await fetch(location.href, {credentials: 'same-origin'});
    if (!r.ok) return;
    const fresh = new DOMParser().parseFromString(await r.text(), 'text/html').querySelector('main');
    if (fresh) document.querySelector('main').innerHTML = fresh.innerHTML;
  } catch (e) { /* offline for a moment: the next round tries again */ }
}, {{refresh_s}} * 1000);
