"""A Temporal data converter that speaks msgspec.

Temporal's default JSON converter cannot encode `msgspec.Struct`. This replaces its `json/plain`
encoding converter (the shape of `temporalio.contrib.pydantic`) and keeps the others (None, bytes,
protobuf). Every `Client.connect` in Stepwise goes through `temporal.connect_temporal`, whose
converter (`data_converter`) adds the claim-check codec (`claim_check.py`): payloads over 256 KiB
travel as references. `DATA_CONVERTER` (no codec) decodes histories recorded without references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    SerializationContext,
)

from stepwise_contract.claim_check import ClaimCache, ClaimCheckCodec, ClaimStore

_ENCODING = "json/plain"


class MsgspecJSONPayloadConverter(EncodingPayloadConverter):
    """`json/plain` via msgspec; decoders are built once per target type and cached."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    @property
    def encoding(self) -> str:
        return _ENCODING

    def to_payload(self, value: Any) -> Payload | None:
        try:
            data = self._encoder.encode(value)
        except TypeError:
            return None
        return Payload(metadata={"encoding": _ENCODING.encode()}, data=data)

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        decoder = self._decoders.get(type_hint)
        if decoder is None:
            target: Any = Any if type_hint is None else type_hint
            decoder = msgspec.json.Decoder(target)
            self._decoders[type_hint] = decoder
        return decoder.decode(payload.data)


class MsgspecPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = MsgspecJSONPayloadConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=MsgspecPayloadConverter)


_CONTEXTS_KEPT = 1024


@dataclass(frozen=True)
class ContextCachingDataConverter(DataConverter):
    """Temporal derives a converter per serialization context (once per activation, per command);
    with a context-aware codec each derivation clones the converter (new payload converter
    instances included). The clones are kept per context, so a step does not pay for them."""

    _clones: dict[SerializationContext, DataConverter] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def with_context(self, context: SerializationContext) -> ContextCachingDataConverter:
        clone = self._clones.get(context)
        if clone is None:
            clone = super().with_context(context)
            if len(self._clones) >= _CONTEXTS_KEPT:
                self._clones.pop(next(iter(self._clones)))
            self._clones[context] = clone
        return clone  # type: ignore[return-value]


def data_converter(claims: ClaimStore | None, cache: ClaimCache | None = None) -> DataConverter:
    """The msgspec converter with the claim-check codec over `claims` (see `claim_check.py`)."""
    codec = ClaimCheckCodec(claims) if cache is None else ClaimCheckCodec(claims, cache=cache)
    return ContextCachingDataConverter(
        payload_converter_class=MsgspecPayloadConverter, payload_codec=codec
    )
