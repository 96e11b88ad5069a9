"""The recommendation history: after each fit, the model's recommendation is stored,
so the status page can chart how the recommended parameters, the predicted rating
and its interval moved as ratings came in.

Decisions made here:

* **One row per fitted observation set**, not per rating: when ratings arrive
  faster than fits, the keeper fits only the newest set (see
  :mod:`services.optimizer.keeper`), and the history records what the service
  actually recommended. ``observations_seen`` says how many ratings each row knew.
* The row is the recommendation ``GET /ml/status`` gives by default: over every
  provider rated in the model's window, in the context of the most recent rating.
* Rows are keyed by the model's key, so replicas fitting the same set, or a
  restart refitting it, store it once.
* Nothing is recorded before the first model (the best observed rating is not a
  recommendation of the model).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import transaction
from services.optimizer import store
from services.optimizer.keeper import Fitted, ModelKeeper
from services.optimizer.recommendation import Assessment, assess
from services.optimizer.space import SearchSpace

log = logging.getLogger(__name__)


def history_record(fitted: Fitted, assessment: Assessment) -> store.RecommendationRecord | None:
    """The history row for ``fitted``'s default assessment (``None`` without one)."""
    rec = assessment.recommendation
    if rec is None or rec.source != "model" or rec.predicted_rating is None:
        return None
    assert rec.interval is not None and rec.rating_interval is not None
    context = assessment.context
    return store.RecommendationRecord(
        model_key=fitted.model.key,
        observations_seen=fitted.observations_seen,
        observations_used=fitted.model.n_observations,
        provider=rec.provider,
        values=rec.values,
        predicted_rating=rec.predicted_rating,
        interval=rec.interval,
        rating_interval=rec.rating_interval,
        probability_within=assessment.probability_within,
        expected_regret=assessment.expected_regret,
        provider_posterior={
            p.provider: {
                "values": p.values,
                "predicted_rating": p.predicted_rating,
                "interval": list(p.interval),
                "probability_best": p.probability_best,
            }
            for p in assessment.providers
        },
        mode=context.mode if context else None,
        prompt_version=context.prompt_version if context else None,
        fit_seconds=fitted.fit_seconds,
        created_at=fitted.fitted_at,
    )


async def record_recommendation(
    sessions: async_sessionmaker[AsyncSession], keeper: ModelKeeper, fitted: Fitted
) -> bool:
    """Assess ``fitted`` (in the fit thread, so heavy work stays one at a time) and
    append its recommendation to the history; ``True`` if a row was added."""
    model = fitted.model
    space = SearchSpace.for_providers({o.provider for o in model.observations})
    loop = asyncio.get_running_loop()
    assessment = await loop.run_in_executor(
        keeper.executor, assess, space, model.observations, model, None
    )
    record = history_record(fitted, assessment)
    if record is None:
        return False
    async with transaction(sessions) as session:
        added = await store.insert_recommendation(session, record)
    log.info("recommendation after %d ratings: %s %.2f stars (%s)", record.observations_seen,
             record.provider, record.predicted_rating, "stored" if added else "already stored")
    return added
