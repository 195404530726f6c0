"""The message catalogues: both languages complete and really translated, and every user-visible
string in the pages goes through them (a scan of the HTML and of the scripts' string literals)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import pytest

from gateway import i18n

PAGES = sorted(p.name for p in resources.files("gateway").joinpath("static").iterdir() if p.name.endswith(".html"))
# The same text as in English, per language: product names, units, and words the language borrowed.
IDENTICAL = {
    "de": {
        "dash.tablet",  # "Tablet"
        "fleet.scanner",  # "Scanner"
        "fleet.cpu",  # "CPU"
        "fleet.software",  # "Software"
        "fleet.n_online",  # "{n} online"
        "fleet.n_offline",  # "{n} offline"
    },
}
OTHERS = [lang for lang in i18n.LANGUAGES if lang != "en"]
VISIBLE_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
BRAND = "instore"  # the product's name, the same in every language
# A string literal in a script that reads as words for people: a capital followed by lower case,
# or two lower-case words, in either case with a space (code literals have none: classes, URLs, keys).
PROSE = re.compile(r"[A-Za-z][a-z']+ [a-z']{2,}")
LITERAL = re.compile(r"'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"")
# Literals that contain words but are code: CSS class lists given to el() and query selectors.
CODE = re.compile(r"^[a-z][a-z0-9_-]*( [a-z][a-z0-9_-]*)*$|^[a-z]+\.|\[data-|^article|^#|<|://")


def _page(name: str) -> str:
    return resources.files("gateway").joinpath("static", name).read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", OTHERS)
def test_every_catalogue_has_the_same_keys_and_slots_as_english(lang: str) -> None:
    en, other = i18n.catalogue("en"), i18n.catalogue(lang)
    assert set(other) == set(en)
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", other[key])), key


@pytest.mark.parametrize("lang", OTHERS)
def test_translated_unless_listed_as_identical(lang: str) -> None:
    en, other = i18n.catalogue("en"), i18n.catalogue(lang)
    same = {key for key in en if en[key] == other[key]}
    assert same == IDENTICAL.get(lang, set())


def test_every_language_a_store_may_choose_has_a_catalogue() -> None:
    for lang in i18n.LANGUAGES:
        assert i18n.catalogue(lang)


class _Visible(HTMLParser):
    """Text nodes and visible attributes outside scripts, styles and `translate="no"`; script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.texts: list[str] = []
        self.scripts: list[str] = []

    def _hidden(self) -> bool:
        return any(tag in ("script", "style") or no for tag, no in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag not in ("meta", "link", "input", "br", "img"):
            self.stack.append((tag, a.get("translate") == "no"))
        if not self._hidden():
            self.texts += [a[k] or "" for k in VISIBLE_ATTRIBUTES if k in a]

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][0] == "script":
            self.scripts.append(data)
        elif not self._hidden():
            self.texts.append(data)


def _scan(name: str) -> _Visible:
    v = _Visible()
    v.feed(_page(name))
    return v


@pytest.mark.parametrize("name", PAGES)
def test_every_visible_text_in_the_page_is_a_catalogue_mark(name: str) -> None:
    unmarked = [
        text.strip() for text in _scan(name).texts
        if re.search(r"[^\W\d_]", re.sub(r"\{\{[a-z_:.0-9]+\}\}", "", text).replace(BRAND, ""))
    ]
    assert unmarked == [], f"{name}: wrap these in {{{{t:key}}}}"


@pytest.mark.parametrize("name", PAGES)
def test_no_words_for_people_in_the_scripts_outside_the_catalogue(name: str) -> None:
    prose = []
    for script in _scan(name).scripts:
        for line in script.splitlines():
            if line.lstrip().startswith("//"):
                continue
            code = line.split(" // ")[0]
            for m in LITERAL.finditer(code):
                text = m.group(1) if m.group(1) is not None else m.group(2)
                if PROSE.search(text) and not CODE.match(text):
                    prose.append(text)
    assert prose == [], f"{name}: use t('key') for these"


@pytest.mark.parametrize("name", PAGES)
def test_every_key_a_page_names_exists(name: str) -> None:
    page = _page(name)
    keys = set(i18n.MARK.findall(page)) | set(re.findall(r"\bt\('([a-z_]+\.[a-z0-9_.]+)'", page))
    assert keys, f"{name} uses no catalogue"
    known = set(i18n.catalogue("en"))
    assert {k for k in keys if not k.endswith(".")} - known == set()
    for prefix in (k for k in keys if k.endswith(".")):  # t('enrol.size.' + category): a family of keys
        assert any(k.startswith(prefix) for k in known), prefix


def test_a_page_is_filled_in_for_its_language() -> None:
    de = i18n.localise(_page("login.html"), "de")
    assert '<html lang="de">' in de and "Benutzername" in de and "{{" not in de
    assert 'const LANG = "de"' in de  # the scripts' t() reads the same catalogue
    assert 'data-lang="en"' in de and 'aria-pressed="true"' in de  # the switch, German pressed
