"""Pretrained encoders that turn item text and images into vectors."""
