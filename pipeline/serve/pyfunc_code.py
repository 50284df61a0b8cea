"""The code MLflow logs as the recommender model ("models from code"): loading the model runs
this file, which builds `RecommenderModel`, instead of unpickling a stored object."""
import mlflow

from pipeline.serve.pyfunc import RecommenderModel

mlflow.models.set_model(RecommenderModel())
