"""What a browser does with a server-rendered page, for the users of bench/load.py: read its
forms (method, action, fields with their defaults, submit buttons) and links, and build the
request that submitting a form sends. Standard library only, so the users keep working when a
page changes how it submits (GET or POST, where it redirects) without the bench knowing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class NotLocal(ValueError):
    """A URL whose host is not this machine's loopback."""


def require_local(url: str) -> str:
    """The URL, if it is http(s) to localhost, 127.0.0.1 or [::1]; NotLocal otherwise. Every
    request of the load (and every redirect it follows) goes through here first."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        raise NotLocal(f"refusing {url!r}: the load test only talks to localhost")
    return url


_ID = re.compile(r"(?<=/)(\d+|[0-9a-fA-F-]{16,}|[A-Za-z0-9_-]{22,})(?=[/.]|$)")


def path_template(url: str) -> str:
    """The URL's path with ids and opaque tokens as <id>: one name for one endpoint."""
    return _ID.sub("<id>", urlsplit(url).path)


@dataclass
class Form:
    method: str  # "get" or "post"
    action: str  # absolute
    attrs: dict[str, str]
    fields: list[tuple[str, str]] = field(default_factory=list)  # sent as they are
    buttons: list[tuple[str, str]] = field(default_factory=list)  # named submit buttons
    names: set[str] = field(default_factory=set)  # every control, sent or not

    def submit(
        self, values: dict[str, str] | None = None, button: str | None = None
    ) -> tuple[str, str, list[tuple[str, str]]]:
        """(method, url, data) of the submission with ``values`` typed in and the submit
        button whose value (or name) is ``button`` clicked; GET puts the data in the URL.
        A value for a control the form does not have is an error, as for a person who
        cannot find the field."""
        values = dict(values or {})
        missing = set(values) - self.names
        if missing:
            raise KeyError(f"the form has no field {sorted(missing)}")
        data = [(name, values.pop(name) if name in values else value) for name, value in
                self.fields]  # fmt: skip
        data += list(values.items())  # radios and checkboxes that were not checked
        if button is not None:
            chosen = [b for b in self.buttons if button in b]
            if not chosen:
                raise KeyError(f"the form has no button {button!r}")
            data.append(chosen[0])
        if self.method == "get":
            parts = urlsplit(self.action)
            return "GET", urlunsplit(parts._replace(query=urlencode(data), fragment="")), []
        return "POST", self.action, data


@dataclass
class Link:
    href: str  # absolute
    attrs: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    """The forms and links of one HTML page fetched from ``url``."""

    def __init__(self, url: str, html: str):
        super().__init__(convert_charrefs=True)
        self.url = url
        self.html = html
        self.forms: list[Form] = []
        self.links: list[Link] = []
        self.elements: list[tuple[str, dict[str, str]]] = []  # every start tag, in order
        self._form: Form | None = None
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self._link: Link | None = None
        self.feed(html)
        self.close()

    # --- parsing ---

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attrs))
        if tag == "form":
            action = urljoin(self.url, attrs.get("action") or self.url)
            method = "post" if attrs.get("method", "").lower() == "post" else "get"
            self._form = Form(method, action, attrs)
            self.forms.append(self._form)
        elif tag == "a" and "href" in attrs:
            self._link = Link(urljoin(self.url, attrs["href"]), attrs)
            self.links.append(self._link)
        elif self._form is not None and "disabled" not in attrs:
            self._control(tag, attrs)

    def _control(self, tag: str, attrs: dict[str, str]) -> None:
        form, name = self._form, attrs.get("name", "")
        if tag == "input":
            kind = attrs.get("type", "text").lower()
            if kind in ("submit", "image"):
                if name:
                    form.buttons.append((name, attrs.get("value", "")))
            elif kind in ("radio", "checkbox"):
                form.names.add(name)
                if "checked" in attrs:
                    form.fields.append((name, attrs.get("value", "on")))
            elif name and kind not in ("reset", "button", "file"):
                form.names.add(name)
                form.fields.append((name, attrs.get("value", "")))
        elif tag == "button":
            if name and attrs.get("type", "submit").lower() == "submit":
                form.buttons.append((name, attrs.get("value", "")))
        elif tag == "select" and name:
            self._select = (name, [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea" and name:
            self._textarea = (name, [])

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "a":
            self._link = None
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [v for v, selected in options if selected] or [v for v, _ in options[:1]]
            self._form.names.add(name)
            if chosen:
                self._form.fields.append((name, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            self._form.names.add(name)
            self._form.fields.append((name, "".join(text).removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1].append(data)
        if self._link is not None:
            self._link.text += data

    # --- looking things up ---

    def form_with(self, *names: str) -> Form | None:
        """The first form that has every one of these fields."""
        return next((f for f in self.forms if set(names) <= f.names), None)

    def has(self, marker: str) -> bool:
        """Whether the page carries ``data-testid="<marker>"``."""
        return any(attrs.get("data-testid") == marker for _tag, attrs in self.elements)

    def element_with(self, attribute: str) -> dict[str, str] | None:
        """The attributes of the first element that has ``attribute``."""
        return next((attrs for _tag, attrs in self.elements if attribute in attrs), None)

    def link(self, marker: str) -> Link | None:
        """The link marked ``data-testid="<marker>"``."""
        return next((ln for ln in self.links if ln.attrs.get("data-testid") == marker), None)
