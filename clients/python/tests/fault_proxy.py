"""A fault-injecting HTTP proxy in front of a real server: it forwards each request, or
answers it with a chosen status, or with a 200 whose body is made up, and counts what it
saw."""

import http.client
import http.server
import json
import threading


class FaultProxy:
    def __init__(self, upstream, answer=None):
        self.upstream = upstream
        self.answer = answer  # None forwards; a status answers it
        # Each makes the body of a 200 for the next POST (from its number of events) instead
        # of forwarding it: an answer no real server gives.
        self.bodies = []
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests += 1
                status = proxy.answer
                if status is not None:
                    out = b'{"error":{"code":"INJECTED","message":"the proxy answers %d"}}' % status
                    self._answer(status, out, {"Retry-After": "0"})
                    return
                make = proxy._made_up(self.command)
                if make is not None:
                    self._answer(200, json.dumps(make(len(body.splitlines()))).encode())
                    return
                host, port = proxy.upstream.split(":")
                c = http.client.HTTPConnection(host, int(port), timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                c.request(self.command, self.path, body=body, headers=headers)
                r = c.getresponse()
                out = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                c.close()

            def _answer(self, status, out, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in dict(headers).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = _handle
            do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _made_up(self, command):
        with self._lock:
            if command == "POST" and self.bodies:
                return self.bodies.pop(0)
        return None

    def close(self):
        self.server.shutdown()
        self.server.server_close()
