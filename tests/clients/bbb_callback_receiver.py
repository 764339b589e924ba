"""A BigBlueButton integration's callback endpoints for the system tests, taking them as
Greenlight and Moodle's BBB module do: on 127.0.0.1:PORT,

- `GET /ended?...`: the meeting-ended callback (`meta_endCallbackUrl`); its query is reported;
- `POST /ready`: the recording-ready callback (`meta_bbb-recording-ready-url`), a form whose
  `signed_parameters` is checked with PyJWT as an HS256 token under the API secret (expiry
  checked when present) and whose claims are reported.

Prints `listening` once it serves, then one JSON line per callback it accepted:
{"kind": "ended", "path", "query"} or {"kind": "ready", "content_type", "claims"}, or
`refused <reason>` for one it refused (answered 401). Exits when stdin closes.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-secret", required=True)
    args = parser.parse_args()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    class Callbacks(BaseHTTPRequestHandler):
        def answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/ended":
                say(f"refused GET {url.path}")
                self.answer(404)
                return
            query = {name: values for name, values in parse_qs(url.query).items()}
            say(json.dumps({"kind": "ended", "path": url.path, "query": query}))
            self.answer(200)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            content_type = self.headers.get("content-type", "")
            try:
                if self.path != "/ready":
                    raise ValueError(f"path {self.path}")
                form = parse_qs(body, strict_parsing=True)
                if list(form) != ["signed_parameters"] or len(form["signed_parameters"]) != 1:
                    raise ValueError(f"form {body}")
                claims = jwt.decode(
                    form["signed_parameters"][0], args.api_secret, algorithms=["HS256"]
                )
            except Exception as error:  # every refusal is reported to the test
                say(f"refused {error}")
                self.answer(401)
                return
            say(json.dumps({"kind": "ready", "content_type": content_type, "claims": claims}))
            self.answer(200)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Callbacks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    say("listening")
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
