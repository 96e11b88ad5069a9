"""Seed the gateway's database with rated experiments directly (no generation), with
chosen times, trainers, providers, prompt versions and ratings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from services.common.parameter_space import to_native
from services.common.testing import make_test_image
from services.gateway.context import Context
from services.gateway.ids import new_id
from services.gateway.models import Experiment, Image, Rating, Variant

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    experiment_id: str
    created_at: datetime
    trainer: str
    mode: str
    ratings: dict[str, int]  # option → stars
    providers: dict[str, str]
    versions: dict[str, str]


def spec(i: int) -> dict[str, object]:
    """A deterministic variety: 3 trainers, 2 providers, 2 versions, both modes."""
    return {
        "trainer": ("ana", "bea", "carlos")[i % 3],
        "mode": ("structure", "surfaces")[i % 2],
        "providers": {"A": "local", "B": ("local", "leonardo")[i % 2]},
        "versions": {"A": "v1.0.0", "B": ("v1.0.0", "v1.1.0")[(i // 2) % 2]},
        "ratings": {"A": 1 + (i * 3) % 5, "B": 1 + (i * 2 + 1) % 5},
        "comments": {"A": f"comentario {i}, con coma", "B": ""},
    }


async def _insert(ctx: Context, count: int, start: datetime, blobs: bool) -> list[Seeded]:
    out = []
    if blobs:
        for i in range(count):
            await ctx.blobs.put(f"originals/seed{i}.jpg",
                                make_test_image(320, 240, "JPEG", seed=i), "image/jpeg")
            for option in ("A", "B"):
                await ctx.blobs.put(f"enhanced/seed{i}{option}.jpg",
                                    make_test_image(320, 240, "JPEG", seed=100 + 2 * i
                                                    + (option == "B")), "image/jpeg")
    async with ctx.sessions() as session, session.begin():
        for i in range(count):
            s = spec(i)
            created = start + timedelta(hours=7 * i)
            original = Image(id=new_id("img"), kind="original", sha256=f"{i:064x}",
                             blob_key=f"originals/seed{i}.jpg", content_type="image/jpeg",
                             width=640, height=480, created_at=created)
            session.add(original)
            await session.flush()
            experiment = Experiment(id=new_id("exp"), original_image_id=original.id,
                                    mode=s["mode"], created_at=created,
                                    rated_at=created + timedelta(minutes=3))
            session.add(experiment)
            await session.flush()
            for option in ("A", "B"):
                provider = s["providers"][option]  # type: ignore[index]
                image = Image(id=new_id("img"), kind="enhanced", sha256=f"{i:063x}{option}",
                              blob_key=f"enhanced/seed{i}{option}.jpg",
                              content_type="image/jpeg", width=640, height=480,
                              created_at=created)
                session.add(image)
                await session.flush()
                values = {"strength": 0.1 + 0.02 * i % 0.4, "guidance": 7.0,
                          "structure": 0.85}
                variant = Variant(
                    id=new_id("var"), experiment_id=experiment.id, option=option,
                    provider=provider, parameters=to_native(provider, values),
                    suggestion_source="random",
                    prompt_version=s["versions"][option],  # type: ignore[index]
                    prompt_arm="champion", prompt="photo", negative_prompt="blurry",
                    status="succeeded", stage="done", progress=1.0, image_id=image.id,
                    created_at=created, finished_at=created + timedelta(seconds=30))
                session.add(variant)
                await session.flush()
                session.add(Rating(
                    id=new_id("rat"), experiment_id=experiment.id, variant_id=variant.id,
                    option=option, rating=s["ratings"][option],  # type: ignore[index]
                    comments=s["comments"][option],  # type: ignore[index]
                    rated_by=s["trainer"], created_at=created + timedelta(minutes=3)))
            out.append(Seeded(experiment.id, created, str(s["trainer"]), str(s["mode"]),
                              dict(s["ratings"]),  # type: ignore[call-overload]
                              dict(s["providers"]),  # type: ignore[call-overload]
                              dict(s["versions"])))  # type: ignore[call-overload]
    return out


def seed(gateway: TestClient, count: int, start: datetime = START, blobs: bool = False
         ) -> list[Seeded]:
    ctx: Context = gateway.app.state.context  # type: ignore[attr-defined]
    assert gateway.portal is not None
    return gateway.portal.call(_insert, ctx, count, start, blobs)
