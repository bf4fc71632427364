"""Headers every completion response carries, saying which job, provider and model served it."""

from api.relay import Result
from shared.jobs import JobRecord


def served_headers(record: JobRecord, result: Result) -> dict[str, str]:
    return {
        "x-gateway-job-id": record.id,
        "x-gateway-provider": result.completion.provider,
        "x-gateway-model": result.completion.model,
        "x-gateway-fallback": "true" if result.fallback_used else "false",
        "x-gateway-cost-usd": f"{result.cost_usd:.6f}",
    }
