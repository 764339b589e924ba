"""A customer's webhook endpoint for the system tests: takes plugNmeet's webhooks on
127.0.0.1:PORT/hook and checks each with LiveKit's own webhook receiver (livekit-api's
`WebhookReceiver`: the HS256 JWT under the API secret, issued by the API key, unexpired, whose
`sha256` claim is the body's hash), the scheme plugNmeet's webhooks use. It also checks that
`Hash-Token` carries the same token.

Prints `listening` once it serves, then one JSON line per delivery it accepted:
{"event", "id", "room_id", "sid", "identity", "num_participants", "record_id", "file_id",
"artifact_id", "artifact_type"}, or
`refused <reason>` for one it refused (answered 401). Exits when stdin closes.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from livekit.api import TokenVerifier, WebhookReceiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    args = parser.parse_args()
    receiver = WebhookReceiver(TokenVerifier(args.api_key, args.api_secret))
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            token = self.headers.get("authorization", "")
            try:
                if self.path != "/hook":
                    raise ValueError(f"path {self.path}")
                if self.headers.get("hash-token") != token:
                    raise ValueError("Hash-Token differs from Authorization")
                if self.headers.get("content-type") != "application/json":
                    raise ValueError("content type " + str(self.headers.get("content-type")))
                receiver.receive(body, token)
                event = json.loads(body)
            except Exception as error:  # every refusal is reported to the test
                say(f"refused {error}")
                self.send_response(401)
                self.end_headers()
                return
            room = event.get("room") or {}
            say(json.dumps({
                "event": event.get("event"),
                "id": event.get("id"),
                "room_id": room.get("room_id"),
                "sid": room.get("sid"),
                "num_participants": room.get("num_participants", 0),
                "identity": (event.get("participant") or {}).get("identity"),
                "record_id": (event.get("recording_info") or {}).get("record_id"),
                "file_id": (event.get("analytics") or {}).get("file_id"),
                "artifact_id": (event.get("room_artifact") or {}).get("artifact_id"),
                "artifact_type": (event.get("room_artifact") or {}).get("type"),
            }))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    say("listening")
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
