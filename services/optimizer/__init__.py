"""Optimizer service: suggests generation parameters with a rating-aware Gaussian
process (render difficulty, trainer bias and noise modelled; Thompson sampling over
providers and parameters) and learns from trainers' ratings.

It owns three tables, ``observations`` (one row per rating it was told about),
``phase_1_control`` (the admin's manual stop) and ``recommendations`` (the
recommendation after each fit), and rebuilds its model from the observations, so
restarts and replicas lose nothing. Where things are decided:

    space.py           the search space for a set of enabled providers, the context
    gp.py              the rating model (notation, kernel, hyperpriors, posterior)
    config.py          the model's knobs (GPConfig)
    encoding.py        observations → the GP's inputs; the key naming one model
    fitting.py         fitting one model per observation set; in-process model cache
    keeper.py          the service's latest model: background fits, one at a time,
                       single flight, bounded waits for readers
    analysis.py        candidates, recommendation, posterior samples, per-provider
                       posterior
    recommendation.py  what to use now and how sure the model is (``/ml/status``)
    suggest.py         space-filling start-up points, then Bayesian (Thompson,
                       top-two) batches
    dependence.py      each parameter's effect on the predicted rating (partial
                       dependence with its band)
    history.py         the recommendation stored after each fit
    convergence.py     the seeds' score, the posterior convergence, phase-1 completion
    store.py           reading and writing observations and the history
    errors.py          the service's error tree (root ``OptimizerError``)
    api/ml.py          the HTTP surface (``/ml/...``)
"""
