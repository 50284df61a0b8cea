"""The generative recommender around the T5 in `pipeline.models.genrec`: vocabulary, tasks and
samples, the catalogue of semantic IDs, the registered training methods (`methods.METHODS`),
the training step and loop, decoding and fusion, the checkpoint, and HF's reference decoder."""
