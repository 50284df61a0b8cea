"""The image fetch against a server on 127.0.0.1 that answers with good images, 404s, slow
answers, truncated files, HTML and server errors: what is fetched, how each failure is
counted, what a second run asks for again, and the offline line."""
import http.server
import io
import threading
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from pipeline.io.downloads import fetch_images
from pipeline.io.images import cache_name, image_path


def _png(seed: int) -> bytes:
    """A 64 x 64 noise PNG (big enough that half of it stops inside the pixel data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


GOOD = {f"/good{i}.png": _png(i) for i in range(3)}
HALF = len(GOOD["/good0.png"]) // 2


@pytest.fixture
def server():
    """Paths: /good*.png, /truncated.png (a PNG cut in half, with an honest length),
    /short.png (declares more bytes than it sends), /page.html, /slow.png (answers after 2 s),
    /error.png (HTTP 503 twice, then the image); anything else 404. `hits` counts requests."""
    hits = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def send(self, code: int, body: bytes, kind: str, length: int | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            hits[self.path] += 1
            if self.path in GOOD:
                self.send(200, GOOD[self.path], "image/png")
            elif self.path == "/truncated.png":
                self.send(200, GOOD["/good0.png"][:HALF], "image/png")
            elif self.path == "/short.png":
                self.send(200, GOOD["/good0.png"][:HALF], "image/png", length=2 * HALF + 10)
            elif self.path == "/page.html":
                self.send(200, b"<html><body>Sorry</body></html>", "text/html")
            elif self.path == "/slow.png":
                time.sleep(2.0)
                self.send(200, GOOD["/good0.png"], "image/png")
            elif self.path == "/error.png" and hits[self.path] <= 2:
                self.send(503, b"busy", "text/plain")
            elif self.path == "/error.png":
                self.send(200, GOOD["/good1.png"], "image/png")
            else:
                self.send(404, b"no", "text/plain")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def test_fetch_counts_each_failure_by_reason_and_never_fetches_twice(server, tmp_path):
    base, hits = server
    names = [*GOOD, "/missing.png", "/truncated.png", "/short.png", "/page.html", "/slow.png",
             "/error.png"]
    urls = [base + n for n in names]
    cache = tmp_path / "cache"
    counts = fetch_images(urls + urls[:1], cache, connections=4, timeout=0.5, retries=2,
                          progress="")
    assert counts == {"requested": 9, "cached": 0, "known_failures": 0, "fetched": 4,
                      "failed/http_4xx": 1, "failed/truncated": 2, "failed/not_an_image": 1,
                      "failed/timeout": 1}
    for n in GOOD:
        assert (cache / cache_name(base + n)).read_bytes() == GOOD[n]
    assert image_path(base + "/error.png", "remote", cache)[1] == "ok"     # retried past 503s
    assert image_path(base + "/page.html", "remote", cache) == (None, "not_downloaded")
    assert hits["/missing.png"] == 1 and hits["/page.html"] == 1          # failed for good
    assert hits["/truncated.png"] == 3 and hits["/slow.png"] == 3         # retried
    assert not list(cache.glob("*.part"))
    before = hits.copy()
    again = fetch_images(urls, cache, connections=4, timeout=0.5, retries=0, progress="")
    assert again["cached"] == 4 and again["known_failures"] == 2 and "fetched" not in again
    asked = {n for n in names if hits[n] > before[n]}
    assert asked == {"/truncated.png", "/short.png", "/slow.png"}          # worth another try


def test_offline_says_so_in_one_line_and_stops(tmp_path, capsys):
    urls = [f"http://127.0.0.1:9/img{i}.png" for i in range(40)]         # nothing listens on 9
    counts = fetch_images(urls, tmp_path / "cache", connections=4, timeout=1.0, retries=3,
                          progress="")
    assert "fetched" not in counts
    assert counts.get("failed/offline", 0) + counts.get("failed/unreachable", 0) == 40
    assert counts["failed/offline"] > 0                                  # the rest not tried
    lines = [line for line in capsys.readouterr().out.splitlines() if "offline" in line]
    assert len(lines) == 1 and "40 images not fetched" in lines[0]
