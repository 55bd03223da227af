"""Connection refused: an API that never answered this run is not there (one retry); one that
answered before is on a flaky network (the whole retry ladder)."""

from __future__ import annotations

import http.server
import threading

import pytest

from syncd.api.client import ApiClient, ApiError
from syncd.api.retry import RetryPolicy


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def client_for(url: str, slept: list[float]) -> ApiClient:
    return ApiClient(url, "t", policy=RetryPolicy(max_retries=5), sleep=slept.append)


def test_refused_before_any_answer_is_given_up_after_one_retry(server):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    slept: list[float] = []
    client = client_for(url, slept)
    with pytest.raises(ApiError, match=r"connection refused \(after 2 attempts\)"):
        client.request("GET", "/v2/images/licenses")
    assert client.requests_sent == 2 and len(slept) == 1
    assert client.given_up


def test_refused_after_an_answer_gets_every_retry(server):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    slept: list[float] = []
    client = client_for(url, slept)
    assert client.request("GET", "/v2/images/licenses") == {"data": []}
    server.shutdown()
    server.server_close()
    with pytest.raises(ApiError, match=r"connection refused \(after 6 attempts\)"):
        client.request("GET", "/v2/images/licenses")
    assert client.requests_sent == 1 + 6 and len(slept) == 5
    assert not client.given_up  # one unanswered request after answers: not yet given up
