"""Dataset adapters: each reads one raw format into the same `common.RawDataset`."""
