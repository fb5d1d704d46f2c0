"""Temporal's codec-server protocol, so Temporal's Web UI and CLI show real values (admin).

`POST /api/codec/decode` takes Temporal `Payloads` as protobuf JSON (`{"payloads": [...]}`) and
answers them with every claim-check reference of the caller's tenant replaced by the payload it
stands for; a reference of another tenant is answered as it came (its value is never returned).
`POST /api/codec/encode` answers its payloads unchanged: references are only ever written by the
services' own data converter. Temporal's clients append `/decode` and `/encode` to the configured
endpoint, here `<api>/api/codec`. CORS for the Web UI: `codec_cors.py`.
"""

from __future__ import annotations

from aiohttp import web
from google.protobuf import json_format
from stepwise_contract.claim_check import ClaimCheckCodec, ClaimMissing, claim_of, is_claim
from stepwise_contract.enums import Role
from temporalio.api.common.v1 import Payload, Payloads

from stepwise_api import api_schemas as s
from stepwise_api.auth import Principal
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.responses import json_response
from stepwise_api.route_table import Reply, Route

CODEC_PREFIX = "/api/codec"

# protobuf JSON: base64 `data`, base64 values in `metadata`; empty fields are left out
PAYLOAD = {"type": "object", "properties": {"metadata": {"type": "object"}, "data": s.STRING}}
PAYLOADS = {"type": "object", "properties": {"payloads": s.array(PAYLOAD)}}
ANSWER = s.obj({"payloads": s.array(PAYLOAD)})


async def _payloads(request: web.Request) -> Payloads:
    raw = await request.read()
    try:
        return json_format.Parse(raw or b"{}", Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "INVALID_BODY", f"not Temporal Payloads as protobuf JSON: {exc}"
        ) from None


def _answer(payloads: Payloads) -> web.Response:
    return json_response({"payloads": [json_format.MessageToDict(p) for p in payloads.payloads]})


async def _decoded(codec: ClaimCheckCodec, payload: Payload, tenant: str) -> Payload:
    if not is_claim(payload):
        return payload
    try:
        ref = claim_of(payload)
    except ValueError as exc:
        raise ApiError(400, "INVALID_BODY", f"malformed claim reference: {exc}") from None
    if ref.tenant != tenant:
        return payload
    try:
        return await codec.resolve(ref)
    except ClaimMissing:
        return payload  # deleted with its run (retention): the reference is all there is


async def codec_decode(request: web.Request, principal: Principal) -> web.StreamResponse:
    payloads = await _payloads(request)
    codec = deps_of(request).temporal.data_converter.payload_codec
    if not isinstance(codec, ClaimCheckCodec):
        raise ApiError(503, "CODEC_UNAVAILABLE", "this API has no claim-check codec")
    tenant = str(principal.tenant)
    decoded = [await _decoded(codec, p, tenant) for p in payloads.payloads]
    return _answer(Payloads(payloads=decoded))


async def codec_encode(request: web.Request, _principal: Principal) -> web.StreamResponse:
    return _answer(await _payloads(request))


ROUTES = [
    Route(
        "POST",
        CODEC_PREFIX + "/decode",
        codec_decode,
        Role.ADMIN,
        "Temporal codec server: claim-check references of the caller's tenant → the payloads",
        "codec",
        body=PAYLOADS,
        replies={200: Reply("the decoded payloads", ANSWER)},
    ),
    Route(
        "POST",
        CODEC_PREFIX + "/encode",
        codec_encode,
        Role.ADMIN,
        "Temporal codec server: payloads are stored as they are (answered unchanged)",
        "codec",
        body=PAYLOADS,
        replies={200: Reply("the same payloads", ANSWER)},
    ),
]
