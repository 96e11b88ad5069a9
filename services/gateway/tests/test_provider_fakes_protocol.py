"""The fake Leonardo and Replicate servers speak the protocols the real APIs document.

These drive the fakes with plain HTTP (no client code of ours), so a client test that
passes against a fake passes against the documented protocol, not against itself.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from services.gateway.providers.fakes import FakeServer, Scenario
from services.gateway.providers.fakes.replicate_contract import VERSION
from services.gateway.tests._provider_support import KEY, LEONARDO_MODEL, RENDER

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def leonardo_server() -> Iterator[FakeServer]:
    with FakeServer("leonardo") as server:
        yield server


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[FakeServer]:
    with FakeServer("replicate") as server:
        yield server


@pytest.fixture
def leo(leonardo_server: FakeServer) -> FakeServer:
    leonardo_server.reset(Scenario(pending_polls=1))
    return leonardo_server


@pytest.fixture
def rep(replicate_server: FakeServer) -> FakeServer:
    replicate_server.reset(Scenario(pending_polls=2))
    return replicate_server


def leonardo_upload(fake: FakeServer, http: httpx.Client) -> str:
    answer = http.post(f"{fake.base_url}/init-image", json={"extension": "jpg"},
                       headers=AUTH).json()["uploadInitImage"]
    fields = json.loads(answer["fields"])
    sent = http.post(answer["url"], data=fields, files={"file": ("r.jpg", RENDER, "image/jpeg")})
    assert sent.status_code == 204
    return str(answer["id"])


def leonardo_body(image_id: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "prompt": "a room", "modelId": LEONARDO_MODEL, "width": 512, "height": 384,
        "num_images": 1,
        "init_image_id": image_id, "init_strength": 0.3, "guidance_scale": 7,
        "controlnets": [{"initImageId": image_id, "initImageType": "UPLOADED",
                         "preprocessorId": 1, "weight": 0.9}]}
    body.update(changes)
    return body


# Leonardo -------------------------------------------------------------------------------
def test_leonardo_requires_the_bearer_key(leo: FakeServer) -> None:
    with httpx.Client() as http:
        answer = http.post(f"{leo.base_url}/init-image", json={"extension": "jpg"},
                           headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401 and answer.json()["code"] == "access-denied"


def test_leonardo_presigned_upload_behaves_like_s3(leo: FakeServer) -> None:
    with httpx.Client() as http:
        bad_ext = http.post(f"{leo.base_url}/init-image", json={"extension": "gif"},
                            headers=AUTH)
        assert bad_ext.status_code == 400 and "extension" in bad_ext.json()["error"]
        answer = http.post(f"{leo.base_url}/init-image", json={"extension": "jpg"},
                           headers=AUTH).json()["uploadInitImage"]
        assert isinstance(answer["fields"], str)  # a JSON string, as the real API sends
        fields = json.loads(answer["fields"])
        assert httpx.URL(answer["url"]).port != httpx.URL(leo.url).port  # another origin
        file = {"file": ("r.jpg", RENDER, "image/jpeg")}
        with_key = http.post(answer["url"], data=fields, files=file, headers=AUTH)
        assert with_key.status_code == 400  # S3: only one auth mechanism allowed
        missing = {k: v for k, v in fields.items() if k != "X-Amz-Signature"}
        assert http.post(answer["url"], data=missing, files=file).status_code == 403
        tampered = {**fields, "Content-Type": "text/html"}
        assert http.post(answer["url"], data=tampered, files=file).status_code == 403
        assert http.post(answer["url"], data=fields, files=file).status_code == 204
    assert leo.state.uploads[fields["key"]] == RENDER


def test_leonardo_generation_lifecycle(leo: FakeServer) -> None:
    with httpx.Client() as http:
        image_id = leonardo_upload(leo, http)
        refused = http.post(f"{leo.base_url}/generations", headers=AUTH,
                            json=leonardo_body(image_id, init_strength=0.95))
        assert refused.status_code == 400 and "init_strength" in refused.json()["error"]
        unknown = http.post(f"{leo.base_url}/generations", headers=AUTH,
                            json=leonardo_body("not-uploaded"))
        assert unknown.status_code == 400
        created = http.post(f"{leo.base_url}/generations", headers=AUTH,
                            json=leonardo_body(image_id)).json()
        generation_id = created["sdGenerationJob"]["generationId"]
        url = f"{leo.base_url}/generations/{generation_id}"
        first = http.get(url, headers=AUTH).json()["generations_by_pk"]
        assert first["status"] == "PENDING" and first["generated_images"] == []
        done = http.get(url, headers=AUTH).json()["generations_by_pk"]
        assert done["status"] == "COMPLETE"
        image_url = done["generated_images"][0]["url"]
        assert image_url.startswith(leo.asset_url)
        assert http.get(image_url, headers=AUTH).status_code == 400  # the CDN wants no key
        image = Image.open(io.BytesIO(http.get(image_url).content))
    assert image.format == "JPEG" and image.size == (512, 384)


def test_leonardo_failed_generation(leonardo_server: FakeServer) -> None:
    fake = leonardo_server
    fake.reset(Scenario(pending_polls=0, fail_generation=True))
    with httpx.Client() as http:
        image_id = leonardo_upload(fake, http)
        generation_id = http.post(f"{fake.base_url}/generations", headers=AUTH,
                                  json=leonardo_body(image_id)).json()[
            "sdGenerationJob"]["generationId"]
        status = http.get(f"{fake.base_url}/generations/{generation_id}",
                          headers=AUTH).json()["generations_by_pk"]["status"]
    assert status == "FAILED"


# Replicate -----------------------------------------------------------------------------
def data_url(image: bytes = RENDER) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image).decode()


def test_replicate_prediction_lifecycle(rep: FakeServer) -> None:
    rep.reset(Scenario(pending_polls=2, official_models={"o/m": VERSION}))
    with httpx.Client() as http:
        assert http.post(f"{rep.base_url}/models/o/m/predictions",
                         json={"input": {}}).status_code == 401
        created = http.post(f"{rep.base_url}/models/o/m/predictions", headers=AUTH,
                            json={"input": {"prompt": "a room", "image": data_url(),
                                            "prompt_strength": 0.3}})
        assert created.status_code == 201
        prediction = created.json()
        assert prediction["status"] == "starting" and prediction["model"] == "o/m"
        assert created.headers["location"] == prediction["urls"]["get"]
        statuses = [http.get(prediction["urls"]["get"], headers=AUTH).json()
                    for _ in range(3)]
    assert [p["status"] for p in statuses] == ["starting", "processing", "succeeded"]
    [output] = statuses[-1]["output"]
    assert output.startswith(rep.asset_url) and statuses[-1]["error"] is None
    png = httpx.get(output)
    assert png.headers["content-type"] == "image/png"


def test_replicate_validates_like_a_model_schema(rep: FakeServer) -> None:
    with httpx.Client(headers=AUTH) as http:
        no_version = http.post(f"{rep.base_url}/predictions", json={"input": {"prompt": "x"}})
        assert no_version.status_code == 422
        bad_image = http.post(f"{rep.base_url}/predictions", json={
            "version": VERSION, "input": {"prompt": "x", "image": "https://elsewhere/x.jpg"}})
        assert bad_image.status_code == 422
        assert bad_image.json()["invalid_fields"][0]["field"] == "input.image"
        out_of_range = http.post(f"{rep.base_url}/predictions", json={
            "version": VERSION,
            "input": {"prompt": "x", "image": data_url(), "prompt_strength": 1.5}})
        assert out_of_range.status_code == 422
        assert "prompt_strength" in out_of_range.json()["detail"]


def test_replicate_files_cancel_and_sync_wait(rep: FakeServer) -> None:
    with httpx.Client(headers=AUTH) as http:
        uploaded = http.post(f"{rep.base_url}/files",
                             files={"content": ("r.jpg", RENDER, "image/jpeg")})
        assert uploaded.status_code == 201
        file_url = uploaded.json()["urls"]["get"]
        prediction = http.post(f"{rep.base_url}/predictions", json={
            "version": VERSION, "input": {"prompt": "x", "image": file_url}}).json()
        cancelled = http.post(prediction["urls"]["cancel"]).json()
        assert cancelled["status"] == "canceled"
        assert http.get(prediction["urls"]["get"]).json()["status"] == "canceled"
        rep.reset(Scenario(prefer_wait="complete"))
        waited = http.post(f"{rep.base_url}/predictions", headers={"Prefer": "wait=5"}, json={
            "version": VERSION, "input": {"prompt": "x", "image": data_url()}}).json()
        assert waited["status"] == "succeeded" and waited["output"]


# Scripted faults -----------------------------------------------------------------------
def test_faults_are_consumed_in_order(rep: FakeServer) -> None:
    rep.reset(Scenario(retry_after="3", faults={"create": ["429", "503", "malformed"]}))
    body = {"version": VERSION, "input": {"prompt": "x", "image": data_url()}}
    with httpx.Client(headers=AUTH) as http:
        answers = [http.post(f"{rep.base_url}/predictions", json=body) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 503, 200, 201]
    assert answers[0].headers["retry-after"] == "3"
    with pytest.raises(ValueError):
        answers[2].json()
    assert answers[3].json()["status"] == "starting"
    assert len(rep.state.calls("create")) == 4


def test_unknown_fake_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        FakeServer("openai")
