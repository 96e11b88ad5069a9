"""Gateway: the trainers' pages and the public REST API.

It is the system of record for images, experiments, variants, ratings and
generation jobs, orchestrates generation, and delivers ratings to the optimizer,
evolution and reward services through a transactional outbox.
"""
