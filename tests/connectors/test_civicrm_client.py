"""The CiviCRM REST client against the loopback sandbox: protocol, URL styles, explained errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from connectors.civicrm import CiviCRMClient, CiviCRMError, CiviCRMSettings, api_url
from connectors.civicrm.client import CiviCRMTransientError, version_at_least
from connectors.errors import PermanentSourceError, TransientSourceError
from sandboxes.civicrm import CiviCRMSandbox

STYLES = ("clean", "wordpress", "wordpress_admin", "standalone")


@pytest.fixture
def civi() -> Iterator[CiviCRMSandbox]:
    with CiviCRMSandbox(contacts=12) as sandbox:
        yield sandbox


def _settings(civi: CiviCRMSandbox, **overrides: object) -> CiviCRMSettings:
    values: dict[str, object] = {
        "site_url": civi.url,
        "url_style": civi.url_style,
        "backoff_seconds": 0,
        "max_retries": 2,
    }
    values.update(overrides)
    return CiviCRMSettings.model_validate(values)


def _client(civi: CiviCRMSandbox, key: str | None = None, **overrides: object) -> CiviCRMClient:
    return CiviCRMClient(_settings(civi, **overrides), key or civi.api_key, civi.site_key)


@pytest.mark.parametrize("style", STYLES)
def test_each_url_style_reaches_the_api(style: str) -> None:
    with CiviCRMSandbox(contacts=3, url_style=style) as civi:  # type: ignore[arg-type]
        with _client(civi) as client:
            result = client.get("Contact", {"select": ["id"], "orderBy": {"id": "ASC"}})
        assert [v["id"] for v in result.values] == [1, 2, 3]
        other = next(s for s in STYLES if s != style and {s, style} != {"clean", "standalone"})
        with _client(civi, url_style=other) as client, pytest.raises(CiviCRMError) as err:
            client.get("Contact", {"limit": 1})
        assert err.value.status == 404
        assert "url_style" in err.value.fix


def test_url_shapes() -> None:
    site = "https://crm.example.org/"
    assert api_url(site, "clean", "Contact", "get") == (
        "https://crm.example.org/civicrm/ajax/api4/Contact/get"
    )
    assert api_url(site, "wordpress", "Contact", "get") == (
        "https://crm.example.org/?civiwp=CiviCRM&q=civicrm/ajax/api4/Contact/get"
    )
    assert api_url(site, "wordpress_admin", "Contact", "get") == (
        "https://crm.example.org/wp-admin/admin.php?page=CiviCRM&q=civicrm/ajax/api4/Contact/get"
    )


def test_response_envelope_paging_options_and_custom_fields(civi: CiviCRMSandbox) -> None:
    with _client(civi) as client:
        everything = client.get("Activity", {"select": ["id"]})  # APIv4: no default limit
        assert everything.count == len(civi.data.tables["Activity"]) == 36
        page = client.get(
            "Activity",
            {
                "select": ["id", "activity_type_id:name", "status_id:label", "Outcomes.outcome"],
                "where": [["id", ">", 4], ["activity_type_id:name", "IN", ["Outcome Review"]]],
                "orderBy": {"id": "ASC"},
                "limit": 2,
            },
        )
    assert page.count == 2 and page.count_matched is None  # not counted when limited
    assert everything.count_matched == everything.count
    counted = client_count(civi)
    assert counted > 2
    assert page.raw["version"] == 4 and page.raw["entity"] == "Activity"
    for row in page.values:
        assert row["id"] > 4
        assert row["activity_type_id:name"] == "Outcome Review"
        assert row["status_id:label"] == "Completed"
        assert isinstance(row["Outcomes.outcome"], int)


def client_count(civi: CiviCRMSandbox) -> int:
    """``row_count`` in select asks CiviCRM for countMatched alongside a limited page."""
    with _client(civi) as client:
        result = client.get(
            "Activity",
            {
                "select": ["id", "row_count"],
                "where": [["activity_type_id:name", "=", "Outcome Review"]],
                "limit": 1,
            },
        )
    assert result.count == 1 and result.count_matched is not None
    return result.count_matched


def test_json_body_gets_nothing_form_params_get_data(civi: CiviCRMSandbox) -> None:
    """CiviCRM reads only the form field ``params``; a JSON body silently yields nothing."""
    url = api_url(civi.url, "clean", "Contact", "get")
    headers = {"X-Civi-Auth": f"Bearer {civi.api_key}", "X-Requested-With": "XMLHttpRequest"}
    params = {"select": ["id"], "limit": 5}
    as_json = httpx.post(url, json=params, headers=headers).json()
    as_form = httpx.post(url, data={"params": json.dumps(params)}, headers=headers).json()
    assert as_json["values"] == [] and as_json["count"] == 0
    assert len(as_form["values"]) == 5
    # And our client is the form-encoded kind.
    with _client(civi) as client:
        assert len(client.get("Contact", params).values) == 5
    assert civi.requests[-1] == ("Contact", "get", params)


def test_wrong_key_is_explained(civi: CiviCRMSandbox) -> None:
    with _client(civi, key="not-the-key") as client, pytest.raises(CiviCRMError) as err:
        client.get("Contact", {"limit": 1})
    assert err.value.status == 401
    assert "Invalid credential" in str(err.value) and "api_key reference" in err.value.fix
    assert "not-the-key" not in str(err.value)
    assert isinstance(err.value, PermanentSourceError)


def test_missing_site_key_and_missing_permission_fail_the_guard() -> None:
    with CiviCRMSandbox(contacts=2, site_key="the-site-key") as civi:
        settings = _settings(civi)
        with CiviCRMClient(settings, civi.api_key) as client, pytest.raises(CiviCRMError) as err:
            client.get("Contact", {"limit": 1})
        assert err.value.status == 401 and "Must satisfy guard" in str(err.value)
        assert "site_key" in err.value.fix and "authenticate with api key" in err.value.fix
        with CiviCRMClient(settings, civi.api_key, "the-site-key") as client:
            assert client.get("Contact", {"limit": 1}).count == 1
            civi.revoke_permission("authenticate with api key")
            with pytest.raises(CiviCRMError, match="Must satisfy guard"):
                client.get("Contact", {"limit": 1})


def test_empty_key_is_refused_before_any_request(civi: CiviCRMSandbox) -> None:
    with pytest.raises(CiviCRMError, match="no API key"):
        CiviCRMClient(_settings(civi), "")
    assert civi.requests == []


class _StripMarker(httpx.HTTPTransport):
    """A proxy that drops X-Requested-With, as some do."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["X-Requested-With"]
        return super().handle_request(request)


def test_missing_web_service_marker_is_explained(civi: CiviCRMSandbox) -> None:
    client = CiviCRMClient(_settings(civi), civi.api_key, transport=_StripMarker())
    with client, pytest.raises(CiviCRMError) as err:
        client.get("Contact", {"limit": 1})
    assert err.value.status == 400 and "X-Requested-With" in err.value.fix


def test_permissions_are_probed_as_civicrm_enforces_them(civi: CiviCRMSandbox) -> None:
    """An entity permission is a 403; an ACL permission only shortens the answer, so an
    empty answer is "not confirmed", never "granted" (issue #19)."""
    civi.trash_contact(min(civi.data.tables["Contact"]))
    with _client(civi) as client:
        report = client.probe({"Contact": ["first_name", "Consent.share_data"], "Activity": ["x"]})
        assert report.permissions["access deleted contacts"] is True
        civi.revoke_permission("access deleted contacts")
        civi.revoke_permission("access CiviContribute")
        # CiviCRM hides trashed contacts from a user without the permission: no error.
        assert client.get("Contact", {"where": [["is_deleted", "=", True]]}).values == []
        assert client.get("Contact", {"where": [["is_deleted", "=", False]], "limit": 1}).count
        with pytest.raises(CiviCRMError) as err:
            client.get("Contribution", {"limit": 1})
        assert err.value.status == 403 and "access CiviContribute" in str(err.value)
        report = client.probe({"Contact": ["first_name", "Consent.share_data"], "Activity": ["x"]})
    assert report.version == "6.9.0"
    assert report.permissions["access deleted contacts"] is None
    assert "no trashed contact is visible" in report.notes["access deleted contacts"]
    assert report.permissions["view all contacts"] is True
    live = sum(1 for r in civi.data.tables["Contact"].values() if not r.get("is_deleted"))
    assert report.visible["view all contacts"] == f"{live} contacts visible"
    assert report.permissions["access CiviContribute"] is False
    assert any("access CiviContribute" in p for p in report.problems)
    assert not any("access deleted contacts" in p for p in report.problems)
    (missing,) = [p for p in report.problems if p.startswith("Activity has no field 'x' ")]
    assert "the API user can see" in missing and "correct the member's config" in missing
    assert "Consent.share_data" in report.entities["Contact"]


def test_the_version_comes_from_the_domain_as_apiv4_has_no_system_get(
    civi: CiviCRMSandbox,
) -> None:
    with _client(civi) as client:
        assert client.version() == "6.9.0"
        with pytest.raises(CiviCRMError) as err:
            client.call("System", "get", {"select": ["version"]})
    assert "does not exist" in str(err.value)
    assert ("Domain", "get") in {(e, a) for e, a, _ in civi.requests}


def test_bad_field_and_entity_are_permanent_and_not_retried(civi: CiviCRMSandbox) -> None:
    with _client(civi) as client:
        with pytest.raises(CiviCRMError) as err:
            client.get("Contact", {"select": ["Consent.nope"]})
        assert err.value.status == 500 and "Invalid field 'Consent.nope'" in str(err.value)
        assert "Group.field" in err.value.fix
        with pytest.raises(CiviCRMError, match="does not exist"):
            client.get("Nonsense", {})
    assert len(civi.requests) == 2  # one request each: no retries


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(
    civi: CiviCRMSandbox, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connectors.civicrm.client")
    civi.fail_next(2, status)
    delays: list[float] = []
    client = CiviCRMClient(_settings(civi, backoff_seconds=0.5), civi.api_key, sleep=delays.append)
    with client:
        assert client.get("Contact", {"select": ["id"], "limit": 3}).count == 3
    assert delays == [0.5, 1.0]  # bounded exponential backoff
    assert "retry 2/2" in caplog.text and civi.api_key not in caplog.text


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_beyond_retries_are_transient(civi: CiviCRMSandbox, status: int) -> None:
    civi.fail_next(10, status)
    with _client(civi, max_retries=1) as client, pytest.raises(CiviCRMTransientError) as err:
        client.get("Contact", {"limit": 1})
    assert isinstance(err.value, TransientSourceError) and err.value.status == status


def test_timeouts_are_configured_and_transient(civi: CiviCRMSandbox) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    settings = _settings(civi, read_timeout=0.5, connect_timeout=0.25, max_retries=1)
    client = CiviCRMClient(settings, civi.api_key, transport=httpx.MockTransport(slow))
    assert client._http.timeout.read == 0.5 and client._http.timeout.connect == 0.25
    with client, pytest.raises(CiviCRMTransientError, match="timed out"):
        client.get("Contact", {})


def test_version_and_field_discovery(civi: CiviCRMSandbox) -> None:
    with _client(civi) as client:
        assert client.version() == "6.9.0"
        assert "modified_date" in client.field_names("Contribution")
        assert {"Outcomes.outcome", "Outcomes.status", "Outcomes.value"} <= set(
            client.field_names("Activity")
        )
        civi.set_version("6.8.1")
        assert client.version() == "6.8.1"
        assert "modified_date" not in client.field_names("Contribution")
    assert version_at_least("6.10.alpha1", (6, 9)) and not version_at_least("5.81.2", (6, 9))


# ---------------------------------------------------------------- several calls in one request

HEADERS = {"X-Requested-With": "XMLHttpRequest"}


def _raw(civi: CiviCRMSandbox, method: str, **kwargs: object) -> httpx.Response:
    """A hand-made request to the multi-call endpoint, as CiviCRM's own JS would send it."""
    headers = {**HEADERS, "X-Civi-Auth": f"Bearer {civi.api_key}"}
    return httpx.request(method, f"{civi.url}/civicrm/ajax/api4", headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", STYLES)
def test_a_batch_is_one_request_with_results_in_call_order(style: str) -> None:
    with CiviCRMSandbox(contacts=12, url_style=style) as civi:  # type: ignore[arg-type]
        with _client(civi) as client:
            results = client.batch(
                [
                    ("Contact", "get", {"select": ["row_count"], "where": [["id", "<=", 5]]}),
                    ("Contact", "get", {"select": ["id"], "where": [["id", "BETWEEN", [7, 9]]]}),
                    ("Contact", "get", {"select": ["row_count"], "where": [["id", ">=", 11]]}),
                ]
            )
        assert civi.http_requests == [("POST", "calls")]
    assert [r.count for r in results] == [5, 3, 2]
    assert [v["id"] for v in results[1].values] == [7, 8, 9]


def test_a_failed_call_in_a_batch_is_named_without_its_values(civi: CiviCRMSandbox) -> None:
    secret = "Quell-7731"
    with _client(civi) as client, pytest.raises(CiviCRMError) as err:
        client.batch(
            [
                ("Contact", "get", {"select": ["row_count"]}),
                ("Email", "get", {"select": ["nope"], "where": [["email", "=", secret]]}),
            ]
        )
    assert err.value.status == 500 and "Email.get: Invalid field 'nope'" in str(err.value)
    assert secret not in str(err.value)
    assert len(civi.http_requests) == 1  # a bad field is not retried

    civi.revoke_permission("access CiviContribute")  # every call refused: the status is 403
    with _client(civi) as client, pytest.raises(CiviCRMError) as err:
        client.batch([("Contribution", "get", {"select": ["row_count"]})])
    assert err.value.status == 403 and "Contribution.get: permission denied" in str(err.value)
    assert "access CiviContribute" in err.value.fix


def test_the_multi_call_endpoint_answers_like_civicrm(civi: CiviCRMSandbox) -> None:
    calls = {
        "a": ["Contact", "get", {"select": ["row_count"]}],
        "b": ["Contact", "get", {"select": ["nope"]}],
    }
    # One call failed, one succeeded: 200, the error inside its own entry.
    answer = _raw(civi, "POST", data={"calls": json.dumps(calls)})
    assert answer.status_code == 200
    body = answer.json()
    assert body["a"]["countMatched"] == 12
    assert body["b"] == {
        "error_code": 0,
        "error_message": "Invalid field 'nope' for Contact",
        "status": 500,
    }
    # Every call failed: the first failure's status.
    answer = _raw(civi, "POST", data={"calls": json.dumps({"b": calls["b"]})})
    assert answer.status_code == 500 and answer.json()["b"]["status"] == 500
    # Indexes 0..n-1 come back as a JSON list, as PHP's json_encode writes such an array.
    answer = _raw(civi, "POST", data={"calls": json.dumps({"0": calls["a"]})})
    assert isinstance(answer.json(), list)
    # GET is refused before anything runs, even with the calls in the query string.
    answer = _raw(civi, "GET", params={"calls": json.dumps(calls)})
    assert answer.status_code == 405 and "must be http POST" in answer.json()["error_message"]
    # calls from the body only; missing, or a call that is not [entity, action, params]:
    # PHP's fatal error page.
    assert _raw(civi, "POST", params={"calls": json.dumps(calls)}).status_code == 500
    assert _raw(civi, "POST", data={"calls": '{"a": "Contact"}'}).status_code == 500
    # Not JSON at all: nothing runs and the answer is empty.
    answer = _raw(civi, "POST", data={"calls": "{not json"})
    assert answer.status_code == 200 and answer.json() == []
    assert len(civi.requests) == 4  # only the calls of well-formed requests ran


def test_a_large_batch_is_split_and_a_transient_failure_retried(civi: CiviCRMSandbox) -> None:
    from connectors.civicrm.client import MAX_BATCH_CALLS

    n = MAX_BATCH_CALLS + 5
    calls = [
        ("Contact", "get", {"select": ["row_count"], "where": [["id", "<=", i % 12 + 1]]})
        for i in range(n)
    ]
    civi.fail_next(1, 500)
    with _client(civi) as client:
        results = client.batch(calls)
    assert [r.count for r in results] == [i % 12 + 1 for i in range(n)]
    assert civi.http_requests == [("POST", "calls")] * 3  # one failed and retried, then two
    assert len(civi.answers) == n
