"""The validate stage: a strict envelope, a known operation, then the operation's params."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.contracts.request import RequestEnvelope
from worker.errors import UnknownOperationError, ValidationFailedError
from worker.flow.records import Work
from worker.flow.validate import ValidateStage
from worker.operations.quote import QuoteParams
from worker.operations.registry import default_registry

MakeEnvelope = Callable[..., dict[str, Any]]
MakeWork = Callable[[dict[str, Any]], Work]
ENVELOPE_FIELDS = frozenset(RequestEnvelope.model_fields)


def validate(work: Work) -> Work:
    asyncio.run(ValidateStage(default_registry())([work]))
    return work


def failure(work: Work) -> ValidationFailedError:
    assert isinstance(work.error, ValidationFailedError), work.error
    assert work.dead_letter is True
    assert work.request is None or work.params is None
    return work.error


def paths(error: ValidationFailedError) -> list[str]:
    return [str(item["path"]) for item in error.errors]


class TestValidRequests:
    def test_a_valid_envelope_gets_its_request_operation_and_params(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        work = validate(make_work(make_envelope(params={"sku": "SKU-2", "quantity": 3})))
        assert work.error is None
        assert work.request is not None
        assert work.request.tenant == "acme"
        assert work.request.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
        assert work.operation is not None
        assert work.operation.name == "price.quote"
        assert work.params == QuoteParams(sku="SKU-2", quantity=3, currency="EUR")

    def test_optional_fields_are_accepted(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        payload = make_envelope(correlation_id="c-1", reply_to="replies", fields=["total"])
        work = validate(make_work(payload))
        assert work.error is None
        assert work.request is not None
        assert work.request.fields == ["total"]
        assert work.request.correlation_id == "c-1"


class TestEnvelopeErrors:
    def test_an_unknown_field_is_rejected_with_its_path(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        error = failure(validate(make_work(make_envelope(surprise=True))))
        assert paths(error) == ["surprise"]
        assert error.errors[0]["type"] == "extra_forbidden"
        assert error.path == "surprise"
        assert error.code == "validation_failed"

    def test_a_string_quantity_is_rejected_at_params_quantity(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        work = validate(make_work(make_envelope(params={"sku": "SKU-1", "quantity": "2"})))
        error = failure(work)
        assert paths(error) == ["params.quantity"]
        assert error.errors[0]["type"] == "int_type"
        assert error.message.startswith("params.quantity: ")
        # The envelope itself was valid: the response can carry its ids.
        assert work.request is not None

    def test_an_unknown_param_is_rejected_under_params(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        payload = make_envelope(params={"sku": "SKU-1", "quantity": 1, "discount": 5})
        error = failure(validate(make_work(payload)))
        assert paths(error) == ["params.discount"]

    def test_a_missing_tenant_is_rejected_at_tenant(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        payload = make_envelope()
        del payload["tenant"]
        error = failure(validate(make_work(payload)))
        assert paths(error) == ["tenant"]
        assert error.errors[0]["type"] == "missing"

    def test_a_wrongly_typed_envelope_field_is_rejected_with_its_path(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        error = failure(validate(make_work(make_envelope(request_id=17))))
        assert paths(error) == ["request_id"]

    def test_every_failing_field_is_reported(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        payload = make_envelope(tenant="", params=[1], extra=1)
        error = failure(validate(make_work(payload)))
        assert sorted(paths(error)) == ["extra", "params", "tenant"]

    @pytest.mark.parametrize("created_at", ["2024-05-01T12:00:00", "2024-05-01 12:00:00"])
    def test_created_at_must_carry_a_timezone(
        self, make_envelope: MakeEnvelope, make_work: MakeWork, created_at: str
    ) -> None:
        error = failure(validate(make_work(make_envelope(created_at=created_at))))
        assert paths(error) == ["created_at"]
        assert error.errors[0]["type"] == "timezone_aware"

    @pytest.mark.parametrize("created_at", ["2024-05-01T12:00:00Z", "2024-05-01T14:00:00+02:00"])
    def test_created_at_with_an_offset_is_accepted(
        self, make_envelope: MakeEnvelope, make_work: MakeWork, created_at: str
    ) -> None:
        work = validate(make_work(make_envelope(created_at=created_at)))
        assert work.error is None
        assert work.request is not None
        assert work.request.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


class TestUnknownOperation:
    def test_an_unknown_operation_names_the_known_ones(
        self, make_envelope: MakeEnvelope, make_work: MakeWork
    ) -> None:
        work = validate(make_work(make_envelope(operation="no.such.op")))
        assert isinstance(work.error, UnknownOperationError)
        assert work.error.code == "unknown_operation"
        assert work.error.details["known"] == ["price.quote", "text.stats"]
        assert work.error.details["operation"] == "no.such.op"
        assert work.error.details["path"] == "operation"
        assert work.dead_letter is True
        assert work.params is None


# A mutation: drop a field, add one, or replace a field's value with any JSON value.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
    | st.sampled_from(["price.quote", "text.stats", "SKU-1", "2024-05-01T12:00:00Z", "acme"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["sku", "quantity", "text", "top", "x"]), children, max_size=3
        )
    ),
    max_leaves=8,
)
field_names = st.sampled_from(sorted(ENVELOPE_FIELDS)) | st.text(
    st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10
)
mutations = st.lists(
    st.tuples(st.sampled_from(["drop", "set"]), field_names, json_values), min_size=1, max_size=4
)


def mutate(base: dict[str, Any], steps: list[tuple[str, str, Any]]) -> dict[str, Any]:
    body = dict(base)
    for action, name, value in steps:
        if action == "drop":
            body.pop(name, None)
        else:
            body[name] = value
    return body


class TestMutatedEnvelopes:
    # make_envelope and make_work are stateless factories: sharing them across examples is safe.
    @settings(
        max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(steps=mutations)
    def test_a_mutated_envelope_validates_or_names_real_fields(
        self, make_envelope: MakeEnvelope, make_work: MakeWork, steps: list[tuple[str, str, Any]]
    ) -> None:
        payload = mutate(make_envelope(), steps)
        work = validate(make_work(payload))
        if work.error is None:
            assert work.request is not None
            assert work.operation is not None
            assert work.params is not None
            return
        if isinstance(work.error, UnknownOperationError):
            assert work.request is not None
            assert work.error.details["operation"] == payload["operation"]
            return
        error = failure(work)
        assert error.errors
        for item in error.errors:
            path = str(item["path"])
            if item["type"] == "extra_forbidden" and path in payload:
                # An unknown envelope field is named as it was sent.
                assert path not in ENVELOPE_FIELDS
            else:
                assert path.split(".", 1)[0] in ENVELOPE_FIELDS, path
            if path.startswith("params."):
                # Params are only checked once the envelope (and so the operation) is valid.
                assert work.request is not None


class TestWrongTypeIsNamedExactly:
    @settings(
        max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        field=st.sampled_from(["sku", "quantity", "currency"]),
        value=st.none()
        | st.booleans()
        | st.lists(st.integers(-1000, 1000), max_size=2)
        | st.floats(allow_nan=False, allow_infinity=False),
    )
    def test_a_params_field_of_the_wrong_type_fails_at_exactly_its_path(
        self, make_envelope: MakeEnvelope, make_work: MakeWork, field: str, value: Any
    ) -> None:
        params = {"sku": "SKU-1", "quantity": 2, "currency": "EUR", field: value}
        work = validate(make_work(make_envelope(params=params)))
        error = failure(work)
        assert {str(item["path"]) for item in error.errors} == {f"params.{field}"}
        assert work.dead_letter is True
