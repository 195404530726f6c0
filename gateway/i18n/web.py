"""The shell between requests and the pure catalogue code: which language a request gets, and a page in it."""

from __future__ import annotations

from importlib import resources

from fastapi import Request

from gateway.i18n import COOKIE, choose, localise


def language(request: Request, store_default: str | None) -> str:
    """The device's DE/EN choice (cookie), else the store's default, else the browser's Accept-Language."""
    return choose(request.cookies.get(COOKIE), store_default, request.headers.get("accept-language"))


def page(request: Request, name: str, store_default: str | None) -> str:
    """A page from gateway/static/ in the request's language."""
    text = resources.files("gateway").joinpath("static", name).read_text(encoding="utf-8")
    return localise(text, language(request, store_default))
