"""Evolution service: owns prompt versions, the ratings each version received,
prompt evolution, A/B tests and promotion/rollback.

Where things are decided:

* ``triggers``: when an evolution is due (every 10 samples, plateau, low
  performance; never while an A/B test or a monitor is undecided);
* ``issues``: what trainers' comments complain about (categories, severity);
* ``evolver`` (interface), ``engine`` (which evolver runs, from settings),
  ``llm`` (OpenAI-compatible), ``offline`` (phrase bank),
  ``guardrails`` (the client's hard rules), ``llm_fake`` (the LLM's test double);
* ``evolution``: a run from ratings to a new challenger under test;
* ``assignment``: which option of an experiment gets the champion or challenger;
* ``ab_test``: the Bayesian paired decision and the post-promotion monitor;
* ``lifecycle``: applying decisions, manual promote/rollback, audit;
* ``export`` and ``diff``: versions as files for review, term diffs.
"""
