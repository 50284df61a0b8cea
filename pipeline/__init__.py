"""Multimodal generative recommendation pipeline (MACRec, MSCGRec) as DVC stages."""
