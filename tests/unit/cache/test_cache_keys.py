"""Cache keys: one key per question, the tenant inside it, the owner partition Kafka's."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from worker.cache.keys import derive, operation_of, partition_for, partitions_for, tenant_prefix
from worker.operations.quote import QuoteParams


def test_params_spelled_differently_but_equal_after_validation_share_a_key() -> None:
    explicit = QuoteParams.model_validate({"currency": "EUR", "quantity": 2, "sku": "SKU-1"})
    defaulted = QuoteParams.model_validate({"sku": "SKU-1", "quantity": 2})
    assert derive("acme", "price.quote", 1, explicit) == derive("acme", "price.quote", 1, defaulted)


def test_the_key_names_tenant_operation_and_version_and_canonical_params_are_sorted() -> None:
    key = derive("acme", "price.quote", 3, QuoteParams(sku="SKU-1", quantity=2))
    assert key.text.startswith("acme/price.quote/v3/")
    assert key.text.startswith(tenant_prefix("acme"))
    assert operation_of(key.text) == "price.quote"
    assert key.canonical_params == '{"currency":"EUR","quantity":2,"sku":"SKU-1"}'


def test_another_tenant_version_or_param_is_another_key() -> None:
    params = QuoteParams(sku="SKU-1", quantity=2)
    base = derive("acme", "price.quote", 1, params)
    others = [
        derive("globex", "price.quote", 1, params),
        derive("acme", "price.quote", 2, params),
        derive("acme", "price.quote", 1, QuoteParams(sku="SKU-1", quantity=3)),
    ]
    assert len({base.text, *(other.text for other in others)}) == 4
    assert base.digest != others[0].digest, "the tenant is inside the digest, not only the prefix"


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_the_owner_partition_is_the_one_kafkas_default_partitioner_picks(
    key: bytes, partitions: int
) -> None:
    everything = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, everything, everything)


@given(
    st.lists(st.binary(max_size=80), max_size=40),
    st.integers(min_value=1, max_value=64),
)
def test_a_batch_of_keys_gets_the_partitions_kafkas_partitioner_picks_one_by_one(
    keys: list[bytes], partitions: int
) -> None:
    everything = list(range(partitions))
    want = [DefaultPartitioner()(key, everything, everything) for key in keys]
    assert partitions_for(keys, partitions) == want


def test_keys_of_every_tail_length_and_high_bytes_match_kafkas_partitioner() -> None:
    # Keys of many lengths in one batch, every tail length (0-3 bytes past a
    # whole block) and bytes >= 0x80, whose sign Java's murmur2 masks off.
    keys = [
        bytes((i * 37 + j * 101) % 256 for j in range(length))
        for i, length in enumerate(range(0, 70))
    ]
    keys += [b"acme/price.quote/v1/" + bytes(range(200, 232)), b"\xff" * 7]
    everything = list(range(12))
    want = [DefaultPartitioner()(key, everything, everything) for key in keys]
    assert partitions_for(keys, 12) == want
