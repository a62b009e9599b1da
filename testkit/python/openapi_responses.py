"""Checks real answers of the functions against the OpenAPI document.

Reads a JSON list of answers ({"method", "path", "status", "headers": {name:
value}, "body": <JSON or null>}) on stdin and, for each, that the document
names the operation and the status, that the content type is one it gives,
that a JSON body validates against the response's schema (JSON Schema
2020-12, formats checked), and that every header it marks required is
there. Prints one line per problem and exits 1 if there is any.
"""

import json
import sys

import yaml
from jsonschema import Draft202012Validator, FormatChecker


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        document = yaml.safe_load(file)
    problems = []
    answers = json.load(sys.stdin)
    for answer in answers:
        where = f'{answer["method"]} {answer["path"]} → {answer["status"]}'
        operation = document["paths"].get(answer["path"], {}).get(answer["method"].lower())
        if operation is None:
            problems.append(f"{where}: no such operation")
            continue
        response = resolve(document, operation["responses"].get(str(answer["status"])))
        if response is None:
            problems.append(f"{where}: status not documented")
            continue
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        for name, header in (response.get("headers") or {}).items():
            header = resolve(document, header)
            if header.get("required") and name.lower() not in headers:
                problems.append(f"{where}: missing header {name}")
        content = response.get("content") or {}
        media = (headers.get("content-type") or "").split(";")[0].strip()
        if not content:
            continue
        if media not in content:
            problems.append(f"{where}: content type {media!r} not in {sorted(content)}")
            continue
        schema = content[media].get("schema")
        if schema is None or answer.get("body") is None:
            continue
        root = {"allOf": [schema], "components": document["components"]}
        validator = Draft202012Validator(root, format_checker=FormatChecker())
        for error in validator.iter_errors(answer["body"]):
            problems.append(f"{where}: {error.message} at {list(error.absolute_path)}")
    for problem in problems:
        print(problem)
    print(f"{len(answers)} answers checked, {len(problems)} problems", file=sys.stderr)
    sys.exit(1 if problems else 0)


main()
