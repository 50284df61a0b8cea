"""One `XConfig` dataclass and one `nn.Module` per model; checkpoints carry their config."""
