"""The OpenAPI document with what this deployment accepts: the datasets it has, the metrics and
hyperparameter names the run pipeline knows. The contracts (schemas/) cannot know these; the
document should, so clients and schemathesis see the API as it behaves."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from training.catalog import METRIC_NAMES
from training.datasets import available_datasets
from training.folders import Folders
from training.hyperparams import Hyperparameters


def install(app: FastAPI, folders: Folders) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            spec = document["components"]["schemas"]["JobSpec"]["properties"]
            spec["dataset_key"]["enum"] = available_datasets(folders.datasets)
            spec["dataset_key"]["description"] = "A dataset of this deployment (as of the first read of this document)."
            spec["metric_name"]["enum"] = list(METRIC_NAMES)
            for field in ("search_space", "fixed_params"):
                spec[field]["propertyNames"] = {"enum": list(Hyperparameters.names())}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
