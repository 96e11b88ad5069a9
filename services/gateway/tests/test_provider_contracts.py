"""Contract tests: the fakes refuse what the real APIs refuse, and today's clients pass.

Each "old request" below is what the clients sent before issue 15 (float guidance,
an SDXL model with image-to-image plus the Edge ControlNet, a community model called
by name, inputs the model does not have). They reach the fakes over plain HTTP, so the
refusal is the fake's contract, not our client's own checks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.gateway.providers import LeonardoProvider, ReplicateProvider
from services.gateway.providers.fakes import FakeServer, Scenario
from services.gateway.providers.fakes import leonardo_contract as leo_contract
from services.gateway.providers.fakes import replicate_contract as rep_contract
from services.gateway.tests._provider_support import (
    KEY,
    KINO_XL,
    LEONARDO_MODEL,
    LEONARDO_PARAMS,
    RENDER,
    SD_PARAMS,
    generation_request,
)

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def leonardo() -> Iterator[FakeServer]:
    with FakeServer("leonardo") as server:
        yield server


@pytest.fixture(scope="module")
def replicate() -> Iterator[FakeServer]:
    with FakeServer("replicate") as server:
        yield server


def upload(fake: FakeServer, http: httpx.Client) -> str:
    answer = http.post(f"{fake.base_url}/init-image", json={"extension": "jpg"},
                       headers=AUTH).json()["uploadInitImage"]
    sent = http.post(answer["url"], data=json.loads(answer["fields"]),
                     files={"file": ("r.jpg", RENDER, "image/jpeg")})
    assert sent.status_code == 204
    return str(answer["id"])


def old_leonardo_body(image_id: str, **changes: Any) -> dict[str, Any]:
    """The body the Leonardo client sent before issue 15 (Kino XL defaults)."""
    body: dict[str, Any] = {
        "prompt": "a room", "negative_prompt": "cartoon", "modelId": KINO_XL,
        "width": 1024, "height": 768, "num_images": 1, "init_image_id": image_id,
        "init_strength": 0.28, "guidance_scale": 7.2,
        "controlnets": [{"initImageId": image_id, "initImageType": "UPLOADED",
                         "preprocessorId": 19, "weight": 0.89}]}
    body.update(changes)
    return body


def post_generation(fake: FakeServer, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client() as http:
        return http.post(f"{fake.base_url}/generations", json=body, headers=AUTH)


# Leonardo ------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "path", "words"), [
    ({}, "$.guidance_scale", "32-bit integer for type 'Int'"),  # the old request, as is
    ({"guidance_scale": 7}, "$.controlnets[0].preprocessorId", "incompatible"),  # SDXL
    ({"guidance_scale": 7, "modelId": LEONARDO_MODEL}, "$.controlnets[0].preprocessorId",
     "not available for SD1_5"),  # an SDXL preprocessor id on an SD1.5 model
    ({"guidance_scale": 7, "modelId": LEONARDO_MODEL, "alchemy": False,
      "presetStyle": "DYNAMIC"}, "$.presetStyle", "alchemy"),
    ({"guidance_scale": 7, "init_strength": 0.05}, "$.init_strength", "greater than"),
    ({"guidance_scale": 7, "width": 1020}, "$.width", "multiple of 8"),
    ({"guidance_scale": 7, "weighting": 0.5}, "$.weighting", "unexpected field"),
])
def test_leonardo_fake_refuses_like_the_api(leonardo: FakeServer, changes: dict[str, Any],
                                            path: str, words: str) -> None:
    leonardo.reset(Scenario())
    with httpx.Client() as http:
        image_id = upload(leonardo, http)
    answer = post_generation(leonardo, old_leonardo_body(image_id, **changes))
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "validation-failed" and body["path"] == path
    assert words in body["error"]
    assert not [k for k in leonardo.state.jobs if not k.startswith("_")]  # nothing created


def test_leonardo_sdxl_img2img_with_style_reference_is_allowed(leonardo: FakeServer) -> None:
    """The documented exception: image-to-image on SDXL with Style Reference (67)."""
    leonardo.reset(Scenario())
    with httpx.Client() as http:
        image_id = upload(leonardo, http)
    body = old_leonardo_body(image_id, guidance_scale=7, controlnets=[{
        "initImageId": image_id, "initImageType": "UPLOADED", "preprocessorId": 67,
        "strengthType": "High"}])
    answer = post_generation(leonardo, body)
    assert answer.status_code == 200 and answer.json()["sdGenerationJob"]["generationId"]


def test_the_leonardo_clients_request_meets_the_contract() -> None:
    provider = LeonardoProvider(KEY, cost_per_image_usd=0.01)
    body = provider.build_body(generation_request(LEONARDO_PARAMS), "init-1", 1024, 768, 7)
    assert leo_contract.generation_problem(body, {"init-1"}) is None
    assert body["alchemy"] is False and "alchemy" in body  # sent explicitly
    assert leo_contract.PLATFORM_MODELS[body["modelId"]][1] == "SD1_5"
    assert body["controlnets"][0]["preprocessorId"] in leo_contract.PREPROCESSORS["SD1_5"]


# Replicate -----------------------------------------------------------------------------
def data_url() -> str:
    return "data:image/jpeg;base64," + base64.b64encode(RENDER).decode()


OLD_INPUTS = {"prompt": "a room", "negative_prompt": "cartoon", "image": "",
              "strength": 0.22, "guidance_scale": 8.1, "controlnet_conditioning_scale": 0.93}
"""What the Replicate client sent before issue 15 (for lucataco/sdxl-controlnet)."""


def test_replicate_community_model_by_name_is_404(replicate: FakeServer) -> None:
    replicate.reset(Scenario())
    with httpx.Client(headers=AUTH) as http:
        answer = http.post(f"{replicate.base_url}/models/lucataco/sdxl-controlnet/predictions",
                           json={"input": {**OLD_INPUTS, "image": data_url()}})
    assert answer.status_code == 404
    assert answer.json() == {"detail": "The requested resource could not be found.",
                             "status": 404}


@pytest.mark.parametrize(("body", "headers", "words"), [
    ({"version": rep_contract.VERSION, "input": {**OLD_INPUTS}}, {}, "'strength'"),
    ({"version": "0" * 64, "input": {"prompt": "x"}}, {}, "does not exist"),
    ({"version": rep_contract.VERSION, "input": {"prompt": "x", "prompt_strength": 1.2}}, {},
     "less than or equal to 1"),
    ({"version": rep_contract.VERSION, "input": {"prompt": "x", "controlnet_1": "canny"}}, {},
     "must be one of"),
    ({"version": rep_contract.VERSION, "input": {"prompt": "x", "controlnet_1": "edge_canny"}},
     {}, "controlnet_1_image"),
    ({"version": rep_contract.VERSION, "input": {"prompt": "x"}}, {"Cancel-After": "2s"},
     "Cancel-After"),
])
def test_replicate_fake_refuses_with_422_detail(replicate: FakeServer, body: dict[str, Any],
                                                headers: dict[str, str], words: str) -> None:
    replicate.reset(Scenario())
    if "image" in body["input"]:
        body["input"]["image"] = data_url()
    with httpx.Client(headers=AUTH) as http:
        answer = http.post(f"{replicate.base_url}/predictions", json=body, headers=headers)
    assert answer.status_code == 422 and words in answer.json()["detail"]
    assert replicate.state.jobs == {}


def test_the_replicate_clients_input_meets_the_contract() -> None:
    provider = ReplicateProvider(KEY, cost_per_image_usd=0.03)
    assert provider.version == rep_contract.VERSION and provider.model == rep_contract.MODEL
    inputs = provider.build_input(generation_request(SD_PARAMS), data_url(), 11)
    assert rep_contract.input_problem(inputs, rep_contract.INPUTS) is None
    # strength, guidance and structure all reach the img2img + ControlNet pipeline
    assert {"prompt_strength", "guidance_scale", "controlnet_1_conditioning_scale"} <= set(
        inputs)
    assert rep_contract.cancel_after_seconds(provider.cancel_after) == 240


def test_replicate_list_leaves_the_input_out(replicate: FakeServer) -> None:
    replicate.reset(Scenario())
    with httpx.Client(headers=AUTH) as http:
        created = http.post(f"{replicate.base_url}/predictions", json={
            "version": rep_contract.VERSION, "input": {"prompt": "x", "image": data_url()}},
            headers={"Cancel-After": "1m30s"})
        assert created.status_code == 201
        listed = http.get(f"{replicate.base_url}/predictions").json()
    [first] = listed["results"]
    assert first["id"] == created.json()["id"] and "input" not in first
    assert replicate.state.jobs[first["id"]]["cancel_after"] == "1m30s"


@pytest.mark.parametrize("contract", [leo_contract.GENERATION, leo_contract.CONTROLNET,
                                      rep_contract.INPUTS])
def test_every_fixture_line_cites_its_source(contract: dict[str, Any]) -> None:
    assert all(field.source.strip() for field in contract.values())
