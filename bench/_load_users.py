"""The users of bench/load.py, driven by locust as a library, in a process of their own (locust
patches the standard library for gevent when it is imported).

    python bench/_load_users.py PLAN.json

The plan (written by bench/load.py) names the host, which must be localhost, 127.0.0.1 or
[::1], the users and their password, the pages and the keys to search. Users act like a
browser: they sign in through the login form, fetch each page, read its form (method, action,
CSRF token, defaults) and submit it, following redirects one at a time (each hop checked to
be local), so a search that is a GET today and a POST redirecting to a results page tomorrow
is driven the same way. Bounded: a fixed number of users started at a fixed rate, a measured
window of the plan's seconds once all have signed in, then the users finish what they are
doing (at most the request timeout) and stop.

Every HTTP request is recorded under its endpoint (redirect hops under the path they reached)
and every user action (what a person waits for: a click and the redirects after it) under
``ACTION``. An error is an action that failed (an HTTP error or timeout on the way, or a page
without what it must show) or an exception in a user. Prints "[load] measuring" and "[load]
window over" when the measured window starts and ends; writes the figures, as JSON, to the
plan's ``out`` file.
"""

from __future__ import annotations

import itertools
import json
import random
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import gevent  # locust, imported next, patches the standard library for gevent
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _browser import Form, Page, path_template, require_local  # noqa: E402
from _harness import percentile  # noqa: E402

REDIRECTS = {301, 302, 303, 307, 308}
ACTION = "ACTION"

PLAN: dict = {}
STOPPING = False
SIGNED_IN: Counter = Counter()
_credentials: dict[str, itertools.count] = defaultdict(itertools.count)


class Failed(Exception):
    """What the user got was not what the action should show."""


# --- samples ------------------------------------------------------------------------------------


def figures(rows: list[tuple[float, float, bool]], started: float, ended: float) -> dict:
    """Count, rate within [started, ended], failures and latency percentiles of samples
    (finished at, milliseconds, failed)."""
    ms = [r[1] for r in rows]
    return {
        "count": len(rows),
        "per_s": round(sum(started <= r[0] <= ended for r in rows) / (ended - started), 2),
        "failures": sum(r[2] for r in rows),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
    }


class Samples:
    """Every request and action completed: (finished at, ms, failed) by (type, name)."""

    def __init__(self):
        self.rows: dict[tuple[str, str], list[tuple[float, float, bool]]] = defaultdict(list)
        self.errors: Counter = Counter()

    def record(self, request_type, name, response_time, exception=None, **_kwargs):
        self.rows[(request_type, name)].append((time.time(), response_time, exception is not None))
        if exception is not None:
            self.errors[f"{request_type} {name}: {str(exception)[:200]}"] += 1

    def reset(self) -> None:
        self.rows.clear()
        self.errors.clear()

    def report(self, started: float, ended: float) -> dict:
        http = {k: v for k, v in sorted(self.rows.items()) if k[0] != ACTION}
        actions = {k: v for k, v in sorted(self.rows.items()) if k[0] == ACTION}
        every = [r for rows in http.values() for r in rows]
        return {
            "window_s": round(ended - started, 1),
            "requests": len(every),
            "requests_per_s": figures(every, started, ended)["per_s"] if every else 0.0,
            "errors": sum(r[2] for rows in actions.values() for r in rows),
            "http_failures": sum(r[2] for r in every),
            "all_requests": figures(every, started, ended) if every else None,
            "endpoints": {
                f"{t} {n}": figures(rows, started, ended) for (t, n), rows in http.items()
            },  # fmt: skip
            "actions": {n: figures(rows, started, ended) for (_t, n), rows in actions.items()},
            "error_messages": dict(self.errors.most_common(20)),
        }


SAMPLES = Samples()


# --- a browser ----------------------------------------------------------------------------------


class Browser(HttpUser):
    abstract = True
    wait_time = between(1, 4)  # the plan's, set in main()

    def on_start(self):
        self.base = require_local(self.host.rstrip("/") + "/")
        self.rng = random.Random()
        kind = type(self).__name__
        self.email = PLAN["emails"][kind][next(_credentials[kind])]
        if self.action("sign in", self.sign_in) is not None:
            SIGNED_IN[kind] += 1

    def fetch(self, url, endpoint, *, method="GET", data=None, referer=None, expect=None):
        """One click: the request, then each redirect as a browser follows it (a POST
        answered 301/302/303 goes on as a GET), every hop checked to stay on this host."""
        url = urljoin(self.base, url)
        headers = {}
        if method == "POST":
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base))
            headers = {"Origin": origin, "Referer": referer or url}
        name = endpoint
        for _hop in range(10):
            require_local(url)
            with self.client.request(method, url, name=name, data=data, headers=headers,
                                     allow_redirects=False, timeout=PLAN["timeout_s"],
                                     catch_response=True) as response:  # fmt: skip
                moved = response.status_code in REDIRECTS
                if moved:
                    problem = None
                elif not response.status_code:
                    problem = f"no answer: {response.error}"
                elif response.status_code >= 400:
                    problem = f"HTTP {response.status_code}"
                else:
                    problem = expect(response) if expect else None
                if problem:
                    response.failure(problem)
                else:
                    response.success()
            if problem:
                raise Failed(f"{name}: {problem}")
            if not moved:
                return response
            if response.status_code in (301, 302, 303) and method == "POST":
                method, data, headers = "GET", None, {}
            url = urljoin(url, response.headers["Location"])
            name = f"{endpoint} > {method} {path_template(url)}"
        raise Failed(f"{endpoint}: more than 10 redirects")

    def page(self, url, endpoint, marker=None, **kwargs) -> Page:
        """A page, which must be HTML, not the login form (unless asked for), and carry
        ``data-testid="<marker>"`` when a marker is given."""

        def expect(response):
            if "text/html" not in response.headers.get("Content-Type", ""):
                return f"not a page: {response.headers.get('Content-Type')}"
            if urlsplit(response.url).path == "/login/" and endpoint != "login page":
                return "sent to the login page"
            if marker and f'data-testid="{marker}"' not in response.text:
                return f"no {marker} on the page"
            return None

        response = self.fetch(url, endpoint, expect=expect, **kwargs)
        return Page(response.url, response.text)

    def submit(self, page: Page, form: Form, endpoint, values=None, button=None, marker=None):
        method, url, data = form.submit(values, button)
        return self.page(url, endpoint, marker, method=method, data=data or None, referer=page.url)

    def download(self, url: str, endpoint: str) -> None:
        """A CSV file: its type, and at least its heading line."""

        def expect(response):
            if not response.headers.get("Content-Type", "").startswith("text/csv"):
                return f"not CSV: {response.headers.get('Content-Type')}"
            if not response.content.strip():
                return "an empty file"
            return None

        self.fetch(url, endpoint, expect=expect)

    def action(self, name, run, *args):
        """One thing a person does, timed from its first request to its last page; its
        result, or None when it failed (recorded as an error)."""
        started = time.perf_counter()
        exception = result = None
        try:
            result = run(*args)
        except Failed as exc:
            exception = exc
        except (KeyError, IndexError, ValueError, AttributeError) as exc:  # the page differed
            exception = Failed(f"{type(exc).__name__}: {exc}")
        events.request.fire(
            request_type=ACTION, name=name, response_time=1000 * (time.perf_counter() - started),
            response_length=0, exception=exception, context={},
        )  # fmt: skip
        return result if exception is None else None

    def sign_in(self) -> Page:
        login = self.page("/login/", "login page")
        form = login.form_with("username", "password")
        if form is None:
            raise Failed("no login form")
        values = {"username": self.email, "password": PLAN["password"]}
        landed = self.submit(login, form, "login", values)
        if landed.form_with("username", "password"):
            raise Failed("still on the login form")
        return landed

    def enter_account(self, page: Page) -> Page:
        """If the page asks to sign in to the account (a form posting to a sign-in URL),
        sign in."""
        form = next((f for f in page.forms if "/sign-in/" in f.action), None)
        if form is None or form.method != "post":
            return page
        return self.submit(page, form, "account sign-in")

    def think(self) -> None:
        self.pause(self.rng.uniform(*PLAN["wait_s"]))

    def pause(self, seconds: float) -> None:
        self.guard()
        gevent.sleep(seconds)
        self.guard()

    def guard(self) -> None:
        if STOPPING:
            raise StopUser()


# --- enterprise admins: Contact Trace, its CSV export, Device Blocking previews -----------------


class EnterpriseAdmin(Browser):
    @task(5)
    def trace(self):
        self.guard()
        url = f"/enterprises/{PLAN['enterprise_id']}/devices/"
        page = self.action("open Contact Trace", self.page, url, "trace page")
        if page is None:
            return
        self.think()
        results = self.action("trace search", self.search, page)
        if results is None:
            return
        link = results.link("trace-export")
        if link is not None and self.rng.random() < PLAN["export_share"]:
            self.think()
            self.action("trace CSV export", self.download, link.href, "trace export")
        elif self.rng.random() < PLAN["sub_campaign_share"]:
            target = self.sub_campaign_entry(results)
            if target is not None:
                self.think()
                self.action("sub-campaign from the trace", self.open_sub_campaign, results, target)

    def search(self, page: Page) -> Page:
        form = page.form_with("criteria", "value")
        if form is None:
            raise Failed("no search form")
        mix = PLAN["trace_mix"]
        kind = self.rng.choices(list(mix), weights=list(mix.values()))[0]
        values = {"criteria": "client_id" if kind.startswith("client") else "device",
                  "value": self.rng.choice(PLAN["keys"][kind])}  # fmt: skip
        return self.submit(page, form, "trace search", values, marker="trace-results")

    @staticmethod
    def sub_campaign_entry(results: Page):
        """How a results row leads into its account's sub-campaign: a form posting to the
        account's sign-in, or a link to it."""
        for form in results.forms:
            if "/sign-in/" in form.action and "sub-campaigns" in json.dumps(form.fields):
                return form
        return next((ln for ln in results.links
                     if "/sign-in/" in ln.href and "sub-campaigns" in ln.href), None)  # fmt: skip

    def open_sub_campaign(self, results: Page, target):
        if isinstance(target, Form):
            page = self.submit(results, target, "account sign-in")
        else:
            page = self.enter_account(self.page(target.href, "account sign-in"))
        if not page.has("sub-campaign-title"):
            raise Failed("the sub-campaign page did not open")

    @task(3)
    def preview(self):
        self.guard()
        url = f"/enterprises/{PLAN['enterprise_id']}/devices/blocking/"
        page = self.action("open Device Blocking", self.page, url, "blocking page")
        if page is not None:
            self.think()
            self.action("device preview", self.view_setting, page)

    def view_setting(self, page: Page) -> Page:
        form = page.form_with("device", "action")
        if form is None:
            raise Failed("no setting form")
        values = {"device": self.rng.choice(PLAN["keys"]["preview"]), "action": "block"}
        return self.submit(page, form, "device preview", values, button="view", marker="preview")


# --- account admins and agents: the live sub-campaign page, the blacklist CSV -------------------


class AccountUser(Browser):
    @task(4)
    def watch(self):
        """Open the sub-campaign and stay on it for a few polls of its counts, as its script
        does: every data-poll-seconds, and the page again when a new attempt shows."""
        self.guard()
        page = self.action("open sub-campaign", self.open_sub_campaign)
        if page is None:
            return
        box = page.element_with("data-poll-url") or {}
        url, latest = box.get("data-poll-url"), box.get("data-latest") or None
        seconds = int(box.get("data-poll-seconds") or 3)
        latest = int(latest) if latest else None
        for _ in range(PLAN["polls"] if url else 0):
            self.pause(seconds)
            data = self.action("sub-campaign counts", self.counts, url)
            if data is not None and data.get("latest_attempt") != latest:
                latest = data.get("latest_attempt")
                self.action("sub-campaign refresh", self.page, page.url, "sub-campaign page",
                            "sub-campaign-title")  # fmt: skip

    def open_sub_campaign(self) -> Page:
        page = self.enter_account(self.page(PLAN["sub_campaign_path"], "sub-campaign page"))
        if not page.has("sub-campaign-title"):
            raise Failed("the sub-campaign page did not open")
        if not page.element_with("data-poll-url"):
            raise Failed("no data-poll-url on the sub-campaign page")
        return page

    def counts(self, url: str) -> dict:
        def expect(response):
            try:
                data = response.json()
            except ValueError:
                return "not JSON"
            return None if "counts" in data else "no counts in the answer"

        return self.fetch(url, "sub-campaign counts", expect=expect).json()

    @task(1)
    def blacklist_export(self):
        self.guard()
        page = self.action("open blacklist", self.page, PLAN["blacklist_path"],
                           "blacklist page", "blacklist-export")  # fmt: skip
        if page is not None:
            self.think()
            href = page.link("blacklist-export").href
            self.action("blacklist CSV export", self.download, href, "blacklist export")


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    global STOPPING
    PLAN.update(json.loads(Path(sys.argv[1]).read_text()))
    host = require_local(PLAN["host"])
    EnterpriseAdmin.fixed_count = PLAN["enterprise_admins"]
    AccountUser.fixed_count = PLAN["users"] - PLAN["enterprise_admins"]
    for cls in (EnterpriseAdmin, AccountUser):
        cls.wait_time = between(*PLAN["wait_s"])
        cls.host = host
    env = Environment(user_classes=[EnterpriseAdmin, AccountUser], host=host, events=events)
    events.request.add_listener(SAMPLES.record)
    runner = env.create_local_runner()
    began = time.time()
    runner.start(PLAN["users"], spawn_rate=PLAN["spawn_rate"])
    while sum(SIGNED_IN.values()) < PLAN["users"] and time.time() - began < PLAN["ramp_limit_s"]:
        gevent.sleep(0.2)
    ramp = SAMPLES.report(began, time.time())
    SAMPLES.reset()
    print(f"[load] {sum(SIGNED_IN.values())} users signed in after {time.time() - began:.1f} s",
          flush=True)  # fmt: skip
    print("[load] measuring", flush=True)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    gevent.sleep(PLAN["seconds"])
    ended = time.time()
    print("[load] window over", flush=True)
    STOPPING = True  # users stop at their next step; what is in flight finishes and counts
    while runner.user_count and time.time() - ended < PLAN["timeout_s"] + 5:
        gevent.sleep(0.2)
    still_running = runner.user_count
    runner.quit()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result = SAMPLES.report(started, ended)
    exceptions = list(runner.exceptions.values())
    result.update(
        started_at=round(started, 3),
        ended_at=round(ended, 3),
        signed_in=dict(SIGNED_IN),
        ramp_s=round(started - began, 1),
        ramp_errors=ramp["errors"],
        ramp_http_failures=ramp["http_failures"],
        ramp_error_messages=ramp["error_messages"],
        ramp_endpoints=ramp["endpoints"],
        sign_in=ramp["actions"].get("sign in"),
        users_still_running_after_drain=still_running,
        unhandled_exceptions=sum(e["occurrences"] for e in exceptions),
        unhandled_exception_messages=[e["msg"][:300] for e in exceptions],
        client_cpu_s=round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
    )
    result["errors"] += result["unhandled_exceptions"] + ramp["errors"]
    result["users_not_signed_in"] = PLAN["users"] - sum(SIGNED_IN.values())
    Path(PLAN["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
