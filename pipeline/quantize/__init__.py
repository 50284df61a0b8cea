"""Quantization of item vectors (or images) into semantic IDs: L levels of K codes each.

`QUANTIZERS` maps each `quantize.methods` word to its module's `fit`. To add a method: a
module with `fit(modalities, params) -> {modality: Quantized}`, a `QuantizeMethod` word in
`pipeline/config/enums.py`, and one line here.
"""
from __future__ import annotations

from pipeline.config import QuantizeMethod
from pipeline.quantize import imported, macrec, rq, rqdino
from pipeline.quantize.base import Quantized, Quantizer

QUANTIZERS: dict[QuantizeMethod, Quantizer] = {
    QuantizeMethod.RQKMEANS: Quantizer(rq.fit_rqkmeans),
    QuantizeMethod.RQVAE: Quantizer(rq.fit_rqvae),
    QuantizeMethod.RQDINO: Quantizer(rqdino.fit),
    QuantizeMethod.IMPORTED: Quantizer(imported.fit, vectors=False),
    # MACRec's cross-modal terms need two modalities; one alone is its plain RQ-VAE.
    QuantizeMethod.MACREC: Quantizer(macrec.fit, joint=True, alone=rq.fit_rqvae),
}

__all__ = ["QUANTIZERS", "Quantized", "Quantizer"]
