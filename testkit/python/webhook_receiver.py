"""A webhook receiver for the tests.

Every request is verified with the `standardwebhooks` package (the Standard
Webhooks specification's reference library), never with the code under
test, and reported as one JSON line on stdout. POST /_control with
{"mode": "ok" | "fail" | "slow", "seconds": n} changes how it answers:
"fail" answers 500, "slow" waits `seconds` before answering 200.

usage: webhook_receiver.py <port, 0 for any>   (WEBHOOK_SECRET in the environment)
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

webhook = Webhook(os.environ["WEBHOOK_SECRET"])
state = {"mode": "ok", "seconds": 0}
lock = threading.Lock()


def report(record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/_control":
            with lock:
                state.update(json.loads(body))
            self.answer(204)
            return
        with lock:
            mode, seconds = state["mode"], state["seconds"]
        record = {
            "path": self.path,
            "webhook_id": self.headers.get("webhook-id"),
            "webhook_timestamp": self.headers.get("webhook-timestamp"),
            "signatures": len((self.headers.get("webhook-signature") or "").split()),
            "content_type": self.headers.get("content-type"),
            "mode": mode,
        }
        try:
            record["event"] = webhook.verify(body, dict(self.headers.items()))
            record["verified"] = True
        except Exception as error:  # every failure is a finding for the test
            record["verified"] = False
            record["error"] = f"{type(error).__name__}: {error}"
        status = 200 if record["verified"] else 400
        if mode == "fail":
            status = 500
        elif mode == "slow":
            time.sleep(seconds)
        record["status"] = status
        report(record)
        self.answer(status)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
report({"listening": server.server_address[1]})
server.serve_forever()
