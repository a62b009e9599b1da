"""Validates an OpenAPI document (openapi-spec-validator, OpenAPI 3.1) and
prints what it describes as JSON: each path's methods, every error code
its responses name (the `enum` or `const` of each error body's `error`), and its
security schemes. Exits non-zero, with the validator's message, when the
document is not valid.
"""

import json
import sys

import yaml
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def codes_in(node, found):
    """Every `enum` (or `const`) of a property named `error`, anywhere in
    `node`."""
    if isinstance(node, dict):
        error = node.get("properties", {}).get("error") if isinstance(node.get("properties"), dict) else None
        if isinstance(error, dict) and isinstance(error.get("enum"), list):
            found.update(error["enum"])
        if isinstance(error, dict) and isinstance(error.get("const"), str):
            found.add(error["const"])
        for value in node.values():
            codes_in(value, found)
    elif isinstance(node, list):
        for value in node:
            codes_in(value, found)


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        document = yaml.safe_load(file)
    validate(document)
    codes = set()
    codes_in(document, codes)
    print(
        json.dumps(
            {
                "openapi": document["openapi"],
                "paths": {
                    path: sorted(m for m in item if m in METHODS)
                    for path, item in document["paths"].items()
                },
                "codes": sorted(codes),
                "security_schemes": sorted(document["components"]["securitySchemes"]),
            }
        )
    )


main()
