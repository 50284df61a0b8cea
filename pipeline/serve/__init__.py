"""The trained recommender for users: the `Recommender` API, its CLI
(`python -m pipeline.serve.recommend`) and the MLflow pyfunc model."""
