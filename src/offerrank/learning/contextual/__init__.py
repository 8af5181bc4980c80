"""The contextual model: a learning method in one folder, the first behind the ranking's Thompson strategy.

A Bayesian logistic regression per offer (per placement x channel) on one-hot features, the profile's attributes,
the request's context (device, hour, channel) and, for a model with segments, the first of them the profile is in.
Trained nightly from aggregated counts, its Laplace posterior served per request by Thompson sampling. Its files,
what a new learning method copies:

- `features.py`: the feature vocabulary (`CONTEXT_KEYS`, `REQUEST_CONTEXT_KEYS`, `SEGMENT`, which the catalog
  validates a model against), how a raw value becomes a level (`level`, and `spark_level` as a Spark column), and
  the one-hot `FeatureDictionary` of a trained model;
- `training.py`: the fit (`fit_logistic`, `design_of`, `train`: the rows of `model_parameters`, keyed by
  `PARAMETER_KEYS`) and `explain` (which features raise and lower an offer's score);
- `serving.py`: the per-request side (`request_context`, `contextual_attribute_names`, `ContextualList`: a published
  list's parameters, and its `CellModel` for one request's cell: quantile tables from `logit_moments` and
  `logit_normal_table`, the Beta `posterior_table` for offers without parameters).

Outside the folder: the Spark job `offerrank.jobs.contextual` (the feature cells of `feature_stats_daily` from the
interactions, the training run into `model_parameters`), called by the aggregate step (`offerrank.jobs.aggregate`);
`offerrank.jobs.rank` attaches the parameters to the published ranking; `offerrank.serving.snapshot` and
`offerrank.serving.lookup` score a request with them. Pure Python, numpy, scipy, pandas and pyarrow: no Spark (but
`spark_level`), no I/O; the catalog is imported for types only (this package sits below it).
"""
