"""Call a Dash callback over HTTP the way the browser does (POST /_dash-update-component)."""

from __future__ import annotations

import json
import re

__all__ = ["call"]


def call(client, outputs: list[tuple[str, str]], inputs: list[tuple[str, str, object]],
         state: list[tuple[str, str, object]] = (), changed: str | None = None):
    """POST a callback request; returns (status code, {"id.prop": value} of the response or None).

    ``changed``: the "id.prop" that triggered the call (default: the first input)."""
    if len(outputs) == 1:
        output = f"{outputs[0][0]}.{outputs[0][1]}"
        outs = {"id": outputs[0][0], "property": outputs[0][1]}
    else:
        output = ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
        outs = [{"id": i, "property": p} for i, p in outputs]
    output = _registered(client, output)
    body = {"output": output, "outputs": outs,
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "changedPropIds": [changed] if changed else [f"{inputs[0][0]}.{inputs[0][1]}"] if inputs else [],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state]}
    response = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    if response.status_code != 200:
        return response.status_code, None
    payload = response.get_json()["response"]
    return 200, {f"{i}.{p}": v for i, props in payload.items() for p, v in props.items()}


def _registered(client, output: str) -> str:
    """The output key as the app registered it: an output with ``allow_duplicate`` carries a hash suffix
    ("alert-audit.children@3f2a..."), which the browser reads from ``/_dash-dependencies`` as done here."""
    if "@" in output:
        return output
    deps = client.get("/_dash-dependencies")
    if deps.status_code != 200:
        return output
    for dep in deps.get_json():
        if dep["output"] != output and re.sub(r"@[0-9a-f]+", "", dep["output"]) == output:
            return dep["output"]
    return output
