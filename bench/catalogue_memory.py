"""MSCGRec's memory argument: bytes to represent the catalogue as semantic IDs plus the
generative model's code embeddings, against a SASRec item-embedding table, at the trained
default catalogue's size and extrapolated to a larger one.

    python bench/catalogue_memory.py [--items 400000] [--out bench/results/catalogue_memory.json]

Reads the trained models (the `<paths.model>` and `<paths.sasrec>` folders; run `make run`
first). Counts what each model must store per catalogue: semantic IDs at the smallest integer
width that holds a code (1 byte for codebooks of ≤ 256), and the token tables whose size
depends on the vocabulary (T5's input embedding and its untied output projection, float32);
SASRec's item table (items + padding row) × hidden, float32, which also scores the items.
The extrapolation keeps the vocabulary fixed: L levels of K codes give K^L distinct IDs, far
more than the extrapolated catalogue, so more items add ID rows, not codes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_params  # noqa: E402
from pipeline.baselines.sasrec import FORMAT as SASREC_FORMAT  # noqa: E402
from pipeline.genrec.checkpoint import FORMAT as GENREC_FORMAT  # noqa: E402
from pipeline.io.weights import load_weights  # noqa: E402

FLOAT = 4


def catalogue_bytes(n_items: int, code_lengths: dict[str, int], code_bytes: int, vocab: int,
                    d_model: int, sasrec_hidden: int) -> dict[str, int]:
    """Bytes of each representation of an `n_items` catalogue."""
    ids = n_items * sum(code_lengths.values()) * code_bytes
    code_tables = 2 * vocab * d_model * FLOAT                 # input embedding + output head
    return {"semantic_ids": ids, "code_embeddings": code_tables,
            "semantic_total": ids + code_tables,
            "sasrec_item_table": (n_items + 1) * sasrec_hidden * FLOAT}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "catalogue_memory.json"))
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    tensors, genrec = load_weights(ROOT / params.paths.model, "model", GENREC_FORMAT, "make run")
    _, sasrec = load_weights(ROOT / params.paths.sasrec, "model", SASREC_FORMAT, "make run")
    codes = {m: tensors[f"codes.{m}.codes"] for m in genrec["modalities"]}
    lengths = {m: int(c.shape[1]) for m, c in codes.items()}
    largest = max(int(c.max()) for c in codes.values())
    code_bytes = 1 if largest < 2 ** 8 else 2 if largest < 2 ** 16 else 4
    vocab, d_model = genrec["config"]["vocab_size"], genrec["config"]["d_model"]
    hidden = sasrec["config"]["hidden"]
    rows = {}
    for n in (genrec["n_items"], args.items):
        rows[str(n)] = catalogue_bytes(n, lengths, code_bytes, vocab, d_model, hidden)
        rows[str(n)]["ratio_sasrec_to_semantic"] = round(
            rows[str(n)]["sasrec_item_table"] / rows[str(n)]["semantic_total"], 2)
    result = {"method": genrec["train"]["method"], "code_lengths": lengths,
              "code_bytes": code_bytes, "vocab": vocab, "t5_d_model": d_model,
              "sasrec_hidden": hidden, "items": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
