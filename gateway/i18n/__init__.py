"""Page languages: one JSON message catalogue per language, the language choice, and locale
formatting with Babel. Pure: the web shell (`gateway.i18n.web`) passes in the cookie and headers.

Pages mark text as `{{t:key}}` (text and attributes, replaced here on the server) and scripts call
`t('key', {name: ...})` on the catalogue injected into the page. See docs/languages.md.
"""

from __future__ import annotations

import functools
import html
import json
import re
from datetime import date
from importlib import resources

from babel import Locale
from babel.dates import format_date as _babel_date
from babel.numbers import format_currency, format_decimal

from firmware_config.store import PAGE_LANGUAGES

LANGUAGES = PAGE_LANGUAGES
FALLBACK = "de"  # the stores' first language, when neither device, store nor browser says
COOKIE = "instore_lang"  # a device's own choice from the DE/EN switch
MARK = re.compile(r"\{\{t:([a-z0-9_.]+)\}\}")
_ARG = re.compile(r"\{([a-z_]+)\}")


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of one language (`gateway/i18n/<lang>.json`), key -> text with `{name}` slots."""
    text = resources.files("gateway.i18n").joinpath(f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def t(lang: str, key: str, **args: object) -> str:
    """A message in `lang`, English if missing there (the catalogue test keeps both complete), else the key."""
    own = catalogue(lang).get(key) if lang in LANGUAGES else None
    text = own or catalogue("en").get(key) or key
    return _ARG.sub(lambda m: str(args.get(m.group(1), m.group(0))), text)


def accepted(header: str | None) -> list[str]:
    """The primary language tags of an Accept-Language header, most preferred first."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def choose(device: str | None, store_default: str | None, accept_language: str | None) -> str:
    """The device's choice, else the store's default, else the browser's preference, else German."""
    for lang in (device, store_default, *accepted(accept_language)):
        if lang in LANGUAGES:
            return lang
    return FALLBACK


def switch_html(lang: str) -> str:
    """The DE/EN switch every page carries: each language named in itself (Babel's locale data)."""
    buttons = "".join(
        f'<button type="button" class="lang-switch" data-lang="{code}" lang="{code}"'
        f' aria-pressed="{str(code == lang).lower()}"'
        f' title="{html.escape(Locale.parse(code).get_display_name(code) or code)}">{code.upper()}</button>'
        for code in LANGUAGES
    )
    label = html.escape(t(lang, "common.language"))
    return f'<span class="lang-switches" role="group" aria-label="{label}">{buttons}</span>'


def _script(lang: str) -> str:
    """The page's catalogue, `t()` for scripts and the switch's handler (sets the cookie, reloads)."""
    messages = json.dumps(catalogue(lang), ensure_ascii=False).replace("</", "<\\/")
    return (
        "<style>.lang-switches { display:inline-flex; gap:4px; } .lang-switches button { width:auto; min-height:36px;"
        " min-width:44px; margin:0; padding:4px 10px; font-size:15px; }"
        " .lang-switches button[aria-pressed=true] { font-weight:700; box-shadow:inset 0 -3px 0 currentColor; }"
        "</style>\n"
        f"<script>const LANG = {json.dumps(lang)}; const MSG = {messages};\n"
        "function t(k, a) { const s = MSG[k] || k;"
        " return a ? s.replace(/\\{(\\w+)\\}/g, (m, n) => n in a ? a[n] : m) : s; }\n"
        "document.addEventListener('click', e => { const b = e.target.closest && e.target.closest('[data-lang]');"
        f" if (!b) return; document.cookie = '{COOKIE}=' + b.dataset.lang + '; path=/; max-age=31536000; samesite=lax';"
        " location.reload(); });\n</script>\n"
    )


def localise(page: str, lang: str) -> str:
    """A page with its `{{t:key}}` marks, `{{lang}}` and `{{lang_switch}}` filled in, and the catalogue injected."""
    page = MARK.sub(lambda m: html.escape(t(lang, m.group(1))), page)
    page = page.replace("{{lang}}", lang).replace("{{lang_switch}}", switch_html(lang))
    return page.replace("</head>", _script(lang) + "</head>", 1)


def price(cents: float, currency: str, lang: str) -> str:
    """A price as the locale writes it: "89,00 €" in German, "€89.00" in English."""
    return format_currency(cents / 100, currency, locale=lang)


def number(value: float, lang: str, digits: int = 0) -> str:
    """A number with the locale's separators ("1.234,5" in German)."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=lang)


def day(iso: str, lang: str) -> str:
    """A YYYY-MM-DD day in the locale's medium form ("06.12.2026", "Dec 6, 2026")."""
    return _babel_date(date.fromisoformat(iso), format="medium", locale=lang)
