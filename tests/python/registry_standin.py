"""A stand-in for an external Confluent Schema Registry, for tests that need one *besides*
ingest-api's built-in registry (no registry server installs from the package registries here:
Karapace is not on PyPI, Confluent's and Apicurio's are JVM services). It implements the part of
the REST API that tunix-rt and confluent-kafka's client use, the way Confluent's does: ids are
global, count up from --first-id, and re-registering an identical schema returns its id.

  POST /subjects/{subject}/versions   {"schema": "..."} -> {"id": N}
  GET  /schemas/ids/{id}              -> {"schema": "..."}            (404 error_code 40403)
  GET  /subjects, /subjects/{s}/versions, /subjects/{s}/versions/{v|latest}

Usage: registry_standin.py PORT STATE_FILE [--first-id N] [--user-info USER:PASSWORD]
State (ids, subjects) persists in STATE_FILE, so a restart keeps the ids. Prints "ready" when
listening. With --user-info, every request needs that HTTP basic auth (401 error_code 40101).
"""

import base64
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CT = "application/vnd.schemaregistry.v1+json"


class State:
    def __init__(self, path, first_id):
        self.path = path
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        else:
            data = {"next_id": first_id, "schemas": {}, "subjects": {}}
        self.next_id = data["next_id"]
        self.schemas = {int(k): v for k, v in data["schemas"].items()}  # id -> text
        self.subjects = data["subjects"]  # subject -> [id, ...] (version n = index n-1)

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"next_id": self.next_id, "schemas": self.schemas, "subjects": self.subjects}, f)
        os.replace(tmp, self.path)

    def register(self, subject, text):
        canonical = json.dumps(json.loads(text), sort_keys=True)
        sid = next((i for i, t in self.schemas.items() if json.dumps(json.loads(t), sort_keys=True) == canonical), None)
        if sid is None:
            sid = self.next_id
            self.next_id += 1
            self.schemas[sid] = text
        versions = self.subjects.setdefault(subject, [])
        if sid not in versions:
            versions.append(sid)
        self.save()
        return sid


def handler(state, user_info):
    expected = "Basic " + base64.b64encode(user_info.encode()).decode() if user_info else None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("registry: " + (fmt % args) + "\n")

        def send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CT)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self):
            if expected and self.headers.get("Authorization") != expected:
                self.send(401, {"error_code": 40101, "message": "Unauthorized"})
                return False
            return True

        def parts(self):
            return [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]

        def do_POST(self):
            if not self.authorized():
                return
            p = self.parts()
            if len(p) == 3 and p[0] == "subjects" and p[2] == "versions":
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send(200, {"id": state.register(p[1], body["schema"])})
            else:
                self.send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        def do_GET(self):
            if not self.authorized():
                return
            p = self.parts()
            if len(p) == 3 and p[:2] == ["schemas", "ids"]:
                text = state.schemas.get(int(p[2])) if p[2].isdigit() else None
                if text is None:
                    self.send(404, {"error_code": 40403, "message": "Schema not found"})
                else:
                    self.send(200, {"schema": text})
            elif p == ["subjects"]:
                self.send(200, sorted(state.subjects))
            elif len(p) >= 3 and p[0] == "subjects" and p[2] == "versions":
                ids = state.subjects.get(p[1])
                if ids is None:
                    self.send(404, {"error_code": 40401, "message": "Subject not found"})
                elif len(p) == 3:
                    self.send(200, list(range(1, len(ids) + 1)))
                else:
                    n = len(ids) if p[3] == "latest" else int(p[3])
                    if not 1 <= n <= len(ids):
                        self.send(404, {"error_code": 40402, "message": "Version not found"})
                    else:
                        self.send(200, {"subject": p[1], "version": n, "id": ids[n - 1], "schema": state.schemas[ids[n - 1]]})
            else:
                self.send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    return Handler


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    port, path = int(argv[0]), argv[1]
    first_id = int(argv[argv.index("--first-id") + 1]) if "--first-id" in argv else 1
    user_info = argv[argv.index("--user-info") + 1] if "--user-info" in argv else None
    state = State(path, first_id)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(state, user_info))
    print("ready", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
