"""The simulator's answers, and the requests a real `syncd sync` sends, against the
Shutterstock OpenAPI reference (v1.0.30, with the license-list query of seed 003)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.validation.request.exceptions import RequestValidationError
from openapi_core.validation.response.exceptions import InvalidData
from openapi_core.validation.schemas import oas30_read_schema_validators_factory

from syncd.simulator import MAX_DETAIL_IDS, STREAMS, Catalog, Simulator

# The published reference v1.0.30, copied from ../shared/reference/ (see tests/data/README.txt)
REFERENCE = Path(__file__).resolve().parent / "data" / "shutterstock-openapi-1.0.30.yaml"
API_SERVER = "https://api.shutterstock.com"  # the spec's server: requests are matched against it
TOKEN = "demo-token"
MEDIA_ID_PARAMETER = {
    "images": "image_id",
    "videos": "video_id",
    "audio": "audio_id",
    "editorial/images": "image_id",
    "editorial/videos": "video_id",
}

# openapi-core cannot check OAuth2 security, and says so each time: the tests check the header.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")


def with_seed_003_license_lists(spec: dict) -> dict:
    """Seed 003 documents one query for all five license lists, adding `download_availability`
    and `team_history`; v1.0.30 lacks `/v2/editorial/videos/licenses`, and gives the audio list
    only `audio_id`. Every list answers a `DownloadHistoryDataList`."""
    spec = copy.deepcopy(spec)
    paths = spec["paths"]
    shared = [
        parameter
        for parameter in paths["/v2/images/licenses"]["get"]["parameters"]
        if parameter["name"] != "image_id"
    ]
    shared += [
        {
            "name": "download_availability",
            "in": "query",
            "schema": {"type": "string", "enum": ["all", "downloadable", "non_downloadable"]},
        },
        {"name": "team_history", "in": "query", "schema": {"type": "boolean"}},
    ]
    editorial_images = paths["/v2/editorial/images/licenses"]["get"]
    paths["/v2/editorial/videos/licenses"] = {  # its POST (licensing) is in v1.0.30: kept
        **paths["/v2/editorial/videos/licenses"],
        "get": {**copy.deepcopy(editorial_images), "operationId": "getEditorialVideoLicenseList"},
    }
    for stream, media_id in MEDIA_ID_PARAMETER.items():
        paths[f"/v2/{stream}/licenses"]["get"]["parameters"] = [
            {"name": media_id, "in": "query", "schema": {"type": "string"}},
            *shared,
        ]
    return spec


@pytest.fixture(scope="module")
def spec() -> dict:
    with open(REFERENCE) as file:
        reference = yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return with_editorial_images_updated(with_seed_003_license_lists(reference))


def with_editorial_images_updated(spec: dict) -> dict:
    """v1.0.30 has only the deprecated `/v2/editorial/updated`; seed 003 documents its
    successor `/v2/editorial/images/updated` with the same query and answer."""
    spec = copy.deepcopy(spec)
    deprecated = spec["paths"]["/v2/editorial/updated"]["get"]
    spec["paths"]["/v2/editorial/images/updated"] = {
        "get": {
            **copy.deepcopy(deprecated),
            "operationId": "getUpdatedEditorialImages",
            "deprecated": False,
        }
    }
    return spec


@pytest.fixture(scope="module")
def openapi(spec) -> OpenAPI:
    # The reference repeats an operationId, so the spec's own validation must stay off.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def error_schema(openapi):
    return oas30_read_schema_validators_factory.create(
        openapi.spec, openapi.spec / "components" / "schemas" / "Error"
    )


@pytest.fixture(scope="module", params=["example", "generated"])
def sim(request):
    catalog = (
        Catalog.example()
        if request.param == "example"
        else Catalog.generate(11, counts={stream: 45 for stream in STREAMS}, team_users=["akim"])
    )
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


def as_documented(sent: requests.PreparedRequest) -> RequestsOpenAPIRequest:
    """The request as if sent to the spec's server."""
    documented = sent.copy()
    documented.url = API_SERVER + sent.path_url
    return RequestsOpenAPIRequest(documented)


def validated(openapi: OpenAPI, response: requests.Response) -> requests.Response:
    openapi.validate_response(as_documented(response.request), RequestsOpenAPIResponse(response))
    return response


def pages(api, sim, stream: str, **params):
    page = 1
    while True:
        answer = api.get(
            f"{sim.base_url}/v2/{stream}/licenses", params={**params, "page": page, "per_page": 20}
        )
        yield answer
        if not answer.json()["data"]:
            return
        page += 1


# -- the simulator's answers -------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("params", [{}, {"team_history": "true"}, {"sort": "oldest"}])
def test_every_license_list_page_conforms(openapi, sim, api, stream, params):
    seen = 0
    for answer in pages(api, sim, stream, **params):
        assert answer.status_code == 200
        seen += len(validated(openapi, answer).json()["data"])
    assert seen == answer.json()["total_count"]


def test_every_redownload_answer_conforms(openapi, sim, api):
    answered = 0
    for stream in ("images", "videos", "audio"):
        for item in api.get(
            f"{sim.base_url}/v2/{stream}/licenses", params={"per_page": 200, "team_history": "true"}
        ).json()["data"]:
            if item.get("is_downloadable") is False:
                continue
            media = item.get("image") or item.get("video") or item["audio"]
            body = {"json": {"size": media["format"]["size"]}} if stream != "audio" else {}
            answer = api.post(f"{sim.base_url}/v2/{stream}/licenses/{item['id']}/downloads", **body)
            assert answer.status_code == 200
            openapi.validate_request(as_documented(answer.request))
            assert validated(openapi, answer).json()["url"].startswith(sim.base_url + "/files/")
            answered += 1
    assert answered >= 9


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("GET", "/v2/images/licenses?per_page=201", None, 400),
        ("POST", "/v2/videos/licenses/v2604117935/downloads", {"size": "8k"}, 400),
        ("POST", "/v2/images/licenses/i5302216985/downloads", {"size": "huge"}, 403),
        ("POST", "/v2/audio/licenses/a0/downloads", None, 404),
        ("GET", "/v2/editorial/videos/licenses/e1/downloads", None, 404),
    ],
)
def test_error_bodies_have_the_error_shape(openapi, error_schema, api, method, path, body, status):
    with Simulator(Catalog.example(), token=TOKEN) as sim:
        answer = api.request(method, sim.base_url + path, json=body)
    assert answer.status_code == status
    check_error(openapi, error_schema, answer)


def test_unauthorized_body_has_the_error_shape(openapi, error_schema, sim):
    answer = requests.get(f"{sim.base_url}/v2/audio/licenses")
    assert answer.status_code == 401
    check_error(openapi, error_schema, answer)


def check_error(openapi, error_schema, answer: requests.Response, documented: bool = True) -> None:
    """The reference documents these statuses without a body schema (404 not at all, and the
    updated-media lists only their 200: `documented=False`); the body is its `Error`, and so
    is each of a 400's `errors`."""
    if answer.status_code != 404 and documented:
        validated(openapi, answer)
    body = answer.json()
    error_schema.validate(body)
    for error in body.get("errors", []):
        error_schema.validate(error)


def test_a_number_as_download_time_is_rejected(openapi, sim, api):
    answer = api.get(f"{sim.base_url}/v2/images/licenses")
    validated(openapi, answer)
    body = answer.json()
    body["data"][0]["download_time"] = 1475524698
    answer._content = json.dumps(body).encode()
    with pytest.raises(InvalidData):
        validated(openapi, answer)


# -- asset details ---------------------------------------------------------------------------


def checked(openapi: OpenAPI, answer: requests.Response) -> requests.Response:
    """The request and the answer both as the reference documents them."""
    openapi.validate_request(as_documented(answer.request))
    return validated(openapi, answer)


def licensed_ids(catalog: Catalog, stream: str) -> list[str]:
    return list(dict.fromkeys(lic.media_id for lic in catalog.history(stream)))


@pytest.mark.parametrize("stream", ["images", "videos", "audio"])
@pytest.mark.parametrize("view", ["full", "minimal"])
def test_every_detail_list_conforms(openapi, sim, api, stream, view):
    ids = licensed_ids(sim.catalog, stream)
    assert ids
    answer = api.get(
        f"{sim.base_url}/v2/{stream}", params={"id": [*ids, "999999999"], "view": view}
    )
    assert answer.status_code == 200
    body = checked(openapi, answer).json()
    assert [item["id"] for item in body["data"]] == ids
    assert [error["data"] for error in body["errors"]] == ["999999999"]
    for error in body["errors"]:
        oas30_read_schema_validators_factory.create(
            openapi.spec, openapi.spec / "components" / "schemas" / "Error"
        ).validate(error)


@pytest.mark.parametrize("stream", ["editorial/images", "editorial/videos"])
def test_every_editorial_detail_conforms(openapi, api, stream):
    catalog = Catalog.generate(5, counts={stream: 12})
    ids = licensed_ids(catalog, stream)
    assert len(ids) >= 10
    with Simulator(catalog, token=TOKEN) as sim:
        for media_id in ids:
            answer = api.get(f"{sim.base_url}/v2/{stream}/{media_id}", params={"country": "USA"})
            assert answer.status_code == 200
            assert checked(openapi, answer).json()["id"] == media_id


def test_details_full_of_markup_and_control_characters_conform(openapi, api):
    catalog = Catalog.example()
    nasty = 'Tom & Jerry <script>alert("x")</script> \x00\x07\x1b tab\tline\n\u2028 é'
    catalog.set_details("images", "59656357", {"description": nasty}, merge=True)
    catalog.set_details("editorial/images", "9804979n", {"caption": nasty}, merge=True)
    with Simulator(catalog, token=TOKEN) as sim:
        image = api.get(f"{sim.base_url}/v2/images", params={"id": "59656357", "view": "full"})
        editorial = api.get(f"{sim.base_url}/v2/editorial/images/9804979n?country=USA")
    assert checked(openapi, image).json()["data"][0]["description"] == nasty
    assert checked(openapi, editorial).json()["caption"] == nasty


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v2/editorial/images/9804979n", 400),  # no country
        ("/v2/editorial/videos/123n", 400),
        ("/v2/editorial/images/0000000n?country=USA", 404),
        ("/v2/images?view=full", 400),  # no id
        ("/v2/videos?id=1&view=everything", 400),
        (f"/v2/audio?{'&'.join(f'id={n}' for n in range(MAX_DETAIL_IDS + 1))}", 400),
    ],
)
def test_detail_errors_have_the_error_shape(openapi, error_schema, api, path, status):
    with Simulator(Catalog.example(), token=TOKEN) as sim:
        answer = api.get(sim.base_url + path)
    assert answer.status_code == status
    check_error(openapi, error_schema, answer)


# -- updated media -----------------------------------------------------------------------------

UPDATES_NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def updates_sim():
    catalog = Catalog.generate(13, counts={"images": 20, "videos": 20, "editorial/images": 20})
    catalog.set_now(UPDATES_NOW)
    kinds = [("addition",), ("edit",), ("deletion",), ("addition", "edit")]
    for stream in ("images", "videos", "editorial/images"):
        ids = list(dict.fromkeys(lic.media_id for lic in catalog.history(stream)))
        for n, media_id in enumerate(ids):
            when = UPDATES_NOW - timedelta(minutes=n * 7)
            catalog.add_update(stream, media_id, when, kinds[n % len(kinds)])
        catalog.add_updates(
            stream, [(f"{n}x", UPDATES_NOW - timedelta(hours=30)) for n in range(150)]
        )
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def updates_api(updates_sim):
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


@pytest.mark.parametrize("stream", ["images", "videos"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"interval": "1 DAY", "sort": "oldest"},
        {"interval": "3 DAY", "per_page": 40, "page": 2},
        {"start_date": "2024-03-08", "end_date": "2024-03-11"},
        {"start_date": "2024-03-09"},
    ],
)
def test_every_updated_media_answer_conforms(openapi, updates_sim, updates_api, stream, params):
    if stream == "images":
        params = {**params, "type": ["addition", "edit", "deletion"]}
    answer = updates_api.get(f"{updates_sim.base_url}/v2/{stream}/updated", params=params)
    assert answer.status_code == 200
    body = checked(openapi, answer).json()
    assert body["data"] and body["total_count"] >= len(body["data"])


@pytest.mark.parametrize("path", ["/v2/editorial/images/updated", "/v2/editorial/updated"])
@pytest.mark.parametrize("kind", ["edit", "addition"])
def test_every_editorial_updated_page_conforms(openapi, updates_sim, updates_api, path, kind):
    params = {
        "type": kind,
        "date_updated_start": "2024-03-08T00:00:00-05:00",
        "date_updated_end": "2024-03-11T00:00:00Z",
        "country": "USA",
        "per_page": 100,
    }
    seen, answer = 0, updates_api.get(updates_sim.base_url + path, params=params)
    while True:
        assert answer.status_code == 200
        body = checked(openapi, answer).json()
        seen += len(body["data"])
        if "next" not in body:
            break
        answer = updates_api.get(
            updates_sim.base_url + path, params={**params, "cursor": body["next"]}
        )
    assert seen >= (100 if kind == "edit" else 5)


@pytest.mark.parametrize(
    "path, reference_allows",
    [
        # requests the reference's schema allows, refused for what its descriptions say
        ("/v2/images/updated?start_date=2024-03-01&end_date=2024-03-05", True),  # 4 days
        ("/v2/videos/updated?interval=1%20DAY&end_date=2024-03-05", True),
        ("/v2/images/updated?interval=1%20FORTNIGHT", True),
        # requests the reference's schema refuses too
        ("/v2/images/updated?per_page=2001", False),
        ("/v2/images/updated?per_page=0", False),
        ("/v2/editorial/images/updated?type=edit&country=USA", False),
        (
            "/v2/editorial/updated?type=edit&country=USA&per_page=50"
            "&date_updated_start=2024-03-01T00:00:00Z&date_updated_end=2024-03-02T00:00:00Z",
            False,
        ),
    ],
)
def test_updated_media_errors_have_the_error_shape(
    openapi, error_schema, updates_sim, updates_api, path, reference_allows
):
    answer = updates_api.get(updates_sim.base_url + path)
    assert answer.status_code == 400
    if reference_allows:
        openapi.validate_request(as_documented(answer.request))
    else:
        with pytest.raises(RequestValidationError):
            openapi.validate_request(as_documented(answer.request))
    check_error(openapi, error_schema, answer, documented="/editorial/" in path)


# -- what syncd sends ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, query, body",
    [
        ("POST", "/v2/videos/licenses/v1/downloads", {}, b'{"size": "8k"}'),
        ("POST", "/v2/images/licenses/i1/downloads", {}, None),
        ("GET", "/v2/editorial/videos/licenses", {"team_history": "maybe"}, None),
        ("GET", "/v2/audio/licenses", {"per_page": "300"}, None),
    ],
)
def test_the_reference_rejects_a_bad_request(openapi, method, path, query, body):
    sent = requests.Request(
        method,
        API_SERVER + path,
        params=query,
        data=body,
        headers={"Content-Type": "application/json"} if body else {},
    )
    with pytest.raises(RequestValidationError):
        openapi.validate_request(RequestsOpenAPIRequest(sent))


def test_requests_of_a_real_sync_conform(openapi, spec, tmp_path):
    with Simulator(Catalog.example(), token=TOKEN) as sim:
        run = subprocess.run(
            [sys.executable, "-m", "syncd", "sync", "--json", "--no-progress"],
            env=sync_environment(sim.base_url, tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    records = sim.api_requests()
    assert {f"/v2/{stream}/licenses" for stream in STREAMS} <= {r.path for r in records}
    assert any(record.method == "POST" for record in records)
    for record in records:
        sent = requests.Request(
            record.method,
            API_SERVER + record.path,
            params=record.query,
            data=record.body or None,
            headers={"Content-Type": record.headers.get("Content-Type", "")},
        )
        openapi.validate_request(RequestsOpenAPIRequest(sent))
        assert set(record.query) <= documented_query(spec, record.method, record.path), record
        assert record.headers["Authorization"] == f"Bearer {TOKEN}"
        assert record.headers.get("User-Agent")
    assert all("Authorization" not in record.headers for record in sim.download_requests())


def sync_environment(base_url: str, tmp_path: Path) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SYNCD_") and name != "SHUTTERSTOCK_API_TOKEN"
    }
    environment.update(
        {
            "SYNCD_API__BASE_URL": base_url,
            "SHUTTERSTOCK_API_TOKEN": TOKEN,
            "SYNCD_DATABASE__URL": f"sqlite:///{tmp_path}/s.db",
            "SYNCD_STORAGE__PATH": str(tmp_path / "dam"),
            "SYNCD_UPDATES__ENABLED": "false",
        }
    )
    return environment


def documented_query(spec: dict, method: str, path: str) -> set[str]:
    """openapi-core ignores query parameters the spec does not name: list them by hand."""
    item = spec["paths"].get(path) or next(
        item
        for template, item in spec["paths"].items()
        if re.fullmatch(re.sub(r"\{[^}/]+\}", "[^/]+", template), path)
    )
    operation = item[method.lower()]
    return {
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }


# -- subscriptions and licensing ---------------------------------------------------------------


@pytest.fixture
def licensing_sim():
    catalog = Catalog.generate(17, counts={stream: 4 for stream in STREAMS})
    catalog.add_subscription(
        "s-api", kind="api", media=("images", "videos"), expires="2098-01-01T00:00:00-05:00"
    )
    catalog.add_subscription(
        "s-ent", kind="enterprise", media="images", required_metadata=("job",), downloads_left=1
    )
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


def first_id(sim, stream: str) -> str:
    return sim.catalog.history(stream)[0].media_id


def test_the_subscription_list_conforms(openapi, licensing_sim, api):
    answer = api.get(f"{licensing_sim.base_url}/v2/user/subscriptions")
    assert answer.status_code == 200
    data = checked(openapi, answer).json()["data"]
    assert {"s8906043", "s-api", "s-ent"} <= {sub["id"] for sub in data}
    assert all(sub["formats"] and "allotment" in sub for sub in data)


@pytest.mark.parametrize(
    "stream, body, params, id_key",
    [
        (
            "images",
            {"images": [{"image_id": "", "size": "medium"}]},
            {"subscription_id": "s8906043"},
            "image_id",
        ),
        (
            "images",
            {"images": [{"image_id": "", "price": 0, "metadata": {"customer_id": "c"}}]},
            {"subscription_id": "s-api", "format": "jpg", "size": "small"},
            "image_id",
        ),
        (
            "images",
            {
                "images": [
                    {
                        "image_id": "",
                        "subscription_id": "s-ent",
                        "metadata": {"job": ""},
                        "editorial_acknowledgement": True,
                    }
                ]
            },
            {},
            "image_id",
        ),
        (
            "videos",
            {"videos": [{"video_id": "", "size": "hd", "subscription_id": "s8241443"}]},
            {},
            "video_id",
        ),
        ("audio", {"audio": [{"audio_id": ""}]}, {"license": "audio_platform"}, "audio_id"),
        (
            "editorial/images",
            {
                "country": "USA",
                "editorial": [{"editorial_id": "", "license": "premier_editorial_all_digital"}],
            },
            {},
            "editorial_id",
        ),
        (
            "editorial/videos",
            {
                "country": "USA",
                "editorial": [
                    {
                        "editorial_id": "",
                        "license": "premier_editorial_video_comp",
                        "size": "original",
                    }
                ],
            },
            {},
            "editorial_id",
        ),
    ],
)
def test_every_licensing_request_and_answer_conform(
    openapi, licensing_sim, api, stream, body, params, id_key
):
    media_id = first_id(licensing_sim, stream)
    items = body[list(body)[-1]] if stream.startswith("editorial/") else body[list(body)[0]]
    items[0][id_key] = media_id
    answer = api.post(f"{licensing_sim.base_url}/v2/{stream}/licenses", json=body, params=params)
    assert answer.status_code == 200, answer.text
    [item] = checked(openapi, answer).json()["data"]
    assert item[id_key] == media_id and item["allotment_charge"] == 1 and "error" not in item
    assert licensing_sim.credits_spent(stream, media_id) == 1
    listed = api.get(
        f"{licensing_sim.base_url}/v2/{stream}/licenses",
        params={MEDIA_ID_PARAMETER[stream]: media_id, "team_history": "true"},
    )
    assert item["license_id"] in {lic["id"] for lic in validated(openapi, listed).json()["data"]}


def test_a_per_item_error_conforms(openapi, licensing_sim, api):
    body = {"images": [{"image_id": "404"}, {"image_id": first_id(licensing_sim, "images")}]}
    answer = api.post(
        f"{licensing_sim.base_url}/v2/images/licenses",
        json=body,
        params={"subscription_id": "s8906043"},
    )
    data = checked(openapi, answer).json()["data"]
    assert [("error" in item) for item in data] == [True, False]


@pytest.mark.parametrize(
    "stream, body, params",
    [
        ("images", {"images": [{"image_id": "x"}]}, {"subscription_id": "s-api"}),  # no price
        ("images", {"images": [{"image_id": "x", "subscription_id": "s-ent"}]}, {}),  # no job
        ("videos", {"videos": [{"video_id": "x"}]}, {"subscription_id": "s404"}),
        ("audio", {"audio": [{"audio_id": "x"}]}, {}),  # no license
        (
            "editorial/images",
            {"country": "USA", "editorial": [{"editorial_id": "x", "license": ""}]},
            {},
        ),
    ],
)
def test_licensing_refusals_have_the_error_shape(
    openapi, error_schema, licensing_sim, api, stream, body, params
):
    answer = api.post(f"{licensing_sim.base_url}/v2/{stream}/licenses", json=body, params=params)
    assert answer.status_code == 400
    openapi.validate_request(as_documented(answer.request))  # the reference allows each body
    check_error(openapi, error_schema, answer)
    assert licensing_sim.credits_spent() == 0


def test_the_reference_rejects_an_editorial_license_without_country_or_license(openapi):
    for body in (
        {"editorial": [{"editorial_id": "1n", "license": "premier_editorial_all_digital"}]},
        {"country": "USA", "editorial": [{"editorial_id": "1n"}]},
        {"images": [{"size": "huge"}]},
    ):
        path = "/v2/images/licenses" if "images" in body else "/v2/editorial/images/licenses"
        sent = requests.Request("POST", API_SERVER + path, json=body)
        with pytest.raises(RequestValidationError):
            openapi.validate_request(RequestsOpenAPIRequest(sent))
