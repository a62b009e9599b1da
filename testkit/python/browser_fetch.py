"""A real browser calling the account routes from a page, as an app's
frontend does: Debian's Chromium, driven by Playwright (from PyPI).

Usage: browser_fetch.py < plan.json > results.json

The plan (JSON on stdin):
  {"hosts": ["app.example.test", ...],      # resolved to 127.0.0.1
   "pages": {"http://app.example.test:4100": "<html>…"},   # served here
   "cookies": [Playwright cookie objects],  # set before the first step
   "steps": [{"page": "http://app.example.test:4100/",
              "fetch": "http://accounts.example.test:4200/api/account/delete",
              "method": "POST"}]}

For each step it opens the page (served by this script from that origin)
and runs, in the page, `fetch(url, {method, credentials: "include"})`.
The result says what the page saw: {"status": 202, "body": "…"} when the
browser handed it the answer, or {"error": "TypeError: Failed to fetch"}
when it did not. Whether the browser sent the cookie is for the caller to
tell from the server's side.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def serve(origin, html):
    """An HTTP server for one origin's page, on that origin's port."""
    port = urlsplit(origin).port

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


FETCH = """async ([url, method]) => {
  try {
    const response = await fetch(url, { method, credentials: "include" });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { error: String(error) };
  }
}"""


def main():
    plan = json.load(sys.stdin)
    servers = [serve(origin, html) for origin, html in plan["pages"].items()]
    rules = ", ".join(f"MAP {host} 127.0.0.1" for host in plan["hosts"])
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--host-resolver-rules={rules}",
            ],
        )
        context = browser.new_context()
        context.add_cookies(plan["cookies"])
        page = context.new_page()
        for step in plan["steps"]:
            page.goto(step["page"])
            results.append(page.evaluate(FETCH, [step["fetch"], step.get("method", "POST")]))
        browser.close()
    for server in servers:
        server.shutdown()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
