"""The optional image download against a server on 127.0.0.1: fetches, skips what is cached,
counts failures."""
import functools
import http.server
import threading

import pytest

from pipeline.io.downloads import download_all
from pipeline.io.images import cache_name, image_path


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.jpg").write_bytes(b"jpeg-bytes")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path / "www")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a, **k: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_fetch_skip_and_fail(server, tmp_path):
    cache = tmp_path / "cache"
    urls = [f"{server}/a.jpg", f"{server}/missing.jpg"]
    assert download_all(urls, cache, retries=2, timeout=5) == {
        "already_cached": 0, "fetched": 1, "failed": 1}
    assert (cache / cache_name(urls[0])).read_bytes() == b"jpeg-bytes"
    assert download_all(urls, cache, retries=1, timeout=5)["already_cached"] == 1
    assert not list(cache.glob("*.part"))
    assert image_path(urls[0], "remote", cache) == (cache / cache_name(urls[0]), "ok")
    assert image_path(urls[1], "remote", cache) == (None, "not_downloaded")
