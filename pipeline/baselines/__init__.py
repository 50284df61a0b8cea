"""The baselines every generative model is compared with, on the same users: SASRec and
popularity."""
