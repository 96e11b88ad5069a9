"""Afinador reward service: image features and the reward model.

Where things are decided:

* :mod:`~services.reward.features`, :mod:`~services.reward.edges`: the classical
  feature vector (documented dimension by dimension); :mod:`~services.reward.structure`:
  structure preservation against the original render; :mod:`~services.reward.clip`:
  optional CLIP embeddings from a local checkpoint.
* :mod:`~services.reward.extraction`: caching by content hash and batching.
* :mod:`~services.reward.observations`: labelled ratings (idempotent by rating id).
* :mod:`~services.reward.model`, :mod:`~services.reward.metrics`: the ensemble with
  uncertainty and how it is scored.
* :mod:`~services.reward.training`: held-out split, validation gate, retraining;
  :mod:`~services.reward.registry`: versions, blobs, rollback;
  :mod:`~services.reward.prediction`: ``/ml/predict_rating``.
"""
