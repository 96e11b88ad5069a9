"""Optimizer service: suggests generation parameters with a rating-aware Gaussian
process (render difficulty, trainer bias and noise modelled; Thompson sampling over
providers and parameters) and learns from trainers' ratings.

It owns two tables, ``observations`` (one row per rating it was told about) and
``phase_1_control`` (the admin's manual stop), and rebuilds its model from the
observations, so restarts and replicas lose nothing. Where
things are decided:

    space.py        the search space for a set of enabled providers, the context
    gp.py           the rating model (notation, kernel, hyperpriors, posterior)
    model.py        fitting from observations, the model cache, candidates,
                    recommendation, posterior samples, per-provider posterior
    suggest.py      space-filling start-up points, then Bayesian (Thompson, top-two) batches
    convergence.py  the seeds' score, the posterior convergence, phase-1 completion
    store.py        reading and writing observations
    api/ml.py       the HTTP surface (``/ml/...``)
"""
