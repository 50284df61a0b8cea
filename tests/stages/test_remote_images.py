"""`image_features` with remote images: it fetches them into the cache and encodes them, and
offline it says so and goes on without them (then `quantize` leaves the modality out)."""
import functools
import http.server
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.config import params_from_dict
from pipeline.io import tables
from pipeline.io.images import cache_name
from pipeline.stages import image_features, ingest, quantize, synthetic


def _remote(params_dict: dict, base: str) -> list[str]:
    """Ingest the tiny shop, then point every item that has an image file at `base`/<file>."""
    params = params_from_dict(params_dict)
    synthetic.run(params)
    ingest.run(params)
    path = Path(params.paths.ingest) / "items.parquet"
    items = tables.read_table(path, tables.ITEMS)
    refs, status = items.column("image_ref").to_pylist(), items.column("image_status").to_pylist()
    urls = [f"{base}/{Path(r).name}" if s == "local" else r for r, s in zip(refs, status)]
    status = ["remote" if s == "local" else s for s in status]
    items = items.set_column(items.schema.get_field_index("image_ref"), "image_ref",
                             pa.array(urls, pa.string()))
    items = items.set_column(items.schema.get_field_index("image_status"), "image_status",
                             pa.array(status, pa.string()))
    tables.write_table(items, path, tables.ITEMS)
    return [u for u, s in zip(urls, status) if s == "remote"]


@pytest.fixture
def image_server(params_dict):
    folder = Path(params_dict["paths"]["synthetic"]).resolve() / "images"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_remote_images_are_fetched_then_encoded(params_dict, image_server):
    urls = _remote(params_dict, image_server)
    assert len(urls) > 50
    metrics = image_features.run(params_from_dict(params_dict))
    cache = Path(params_dict["paths"]["image_cache"])
    assert metrics["download/fetched"] == len(set(urls)) and metrics["covered"] == len(urls)
    assert all((cache / cache_name(u)).is_file() for u in urls)
    again = image_features.run(params_from_dict(params_dict))
    assert again["download/cached"] == len(set(urls)) and "download/fetched" not in again


def test_offline_the_stage_goes_on_and_quantize_leaves_images_out(params_dict, capsys):
    urls = _remote(params_dict, "http://127.0.0.1:9")           # nothing listens there
    params_dict["image_features"]["download"].update(timeout=1.0, retries=1)
    params_dict["quantize"]["methods"] = {"image": "rqkmeans"}
    metrics = image_features.run(params_from_dict(params_dict))
    assert metrics["covered"] == 0 and metrics["missing/not_downloaded"] == len(urls)
    assert "offline" in capsys.readouterr().out
    quantized = quantize.run(params_from_dict(params_dict))
    assert quantized["skipped/image"].startswith("no item has an image vector")
