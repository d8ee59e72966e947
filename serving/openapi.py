"""The OpenAPI document BentoML generates, completed with what the API really does (see serving/gate.py): the body
is required, the statuses the gate answers are documented, the API key is declared, and the weekly activity has
the length the served model reads."""
from __future__ import annotations

from serving.schemas import sequence_weeks

ERROR = {"type": "object", "required": ["error"], "title": "Error",
         "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}


def complete(spec: dict, routes: frozenset[str], statuses: dict[str, str], key_required: bool) -> dict:
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    if key_required:
        spec["components"]["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    for route in routes:
        operation = spec.get("paths", {}).get(route, {}).get("post")
        if not operation:
            continue
        operation.get("requestBody", {})["required"] = True
        for status, description in statuses.items():
            operation["responses"][status] = {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if key_required:
            operation["security"] = [{"ApiKey": []}]
    weeks = sequence_weeks()
    activity = spec["components"]["schemas"].get("CustomerFeatures", {}).get("properties", {}).get("weekly_activity")
    if weeks is not None and activity:
        for branch in activity.get("anyOf", [activity]):
            if branch.get("type") == "array":
                branch["minItems"] = branch["maxItems"] = weeks
    return spec
