import time, uuid
import pytest
from stepwise_cli.bench.drive import StackApi
from stepwise_cli.bench.isolation import HOSTILE_EXPRESSIONS, one_step_definition
pytestmark = pytest.mark.e2e

async def test_probe(stack_api: StackApi) -> None:
    for expr in ("payload.i * 2",) + HOSTILE_EXPRESSIONS + ("payload.i * 2",):
        wf = await stack_api.publish_definition(one_step_definition(f"p-{uuid.uuid4().hex[:6]}", expr))
        t = time.perf_counter()
        run_id = await stack_api.launch(wf, {"i": 1})
        run = await stack_api.wait_run(run_id, timeout_s=60)
        print(f"\n{(time.perf_counter()-t)*1000:7.0f} ms {run['status']} {expr[:50]}")
