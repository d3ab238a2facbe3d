"""template.yaml, read as the local stack sees it: the one description of buckets, queues,
notifications, functions, routes, event sources and schedules, with the intrinsic
functions it uses (!Ref, !Sub, !GetAtt) resolved to local names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT = "000000000000"
REGION = "us-east-1"


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags kept as {"Fn::X": value} / {"Ref": name}."""


def _tag(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if name in ("Ref", "Condition"):
            return {name: value}
        if name == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{name}": value}

    return construct


for _name in (
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Condition",
    "FindInMap",
    "ImportValue",
    "Base64",
    "GetAZs",
):
    _Loader.add_constructor(f"!{_name}", _tag(_name))


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 (SafeLoader)
    return doc


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form: /v1/uploads/{uploadId}
    function: str

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                parts.append(f"(?P<{segment[1:-2]}>.+)")
            elif segment.startswith("{") and segment.endswith("}"):
                parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        return re.compile("^/" + "/".join(parts) + "$")

    @property
    def specificity(self) -> tuple[bool, int]:
        """Sort key: API Gateway prefers literal segments, and greedy paths last."""
        return ("+}" in self.path, self.path.count("{"))

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str  # logical id
    batch_size: int
    concurrency: int


@dataclass(frozen=True)
class Schedule:
    function: str
    seconds: float


@dataclass
class Function:
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str] = field(default_factory=dict)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class Template:
    def __init__(self, path: Path, stack: str, parameters: dict[str, str], endpoint: str) -> None:
        self.root = path.parent
        self.doc = load(path)
        self.stack, self.parameters, self.endpoint = stack, parameters, endpoint
        self.resources: dict[str, dict[str, Any]] = self.doc["Resources"]

    # --- intrinsic functions, resolved locally --------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::Sub"}:
            return self.sub(value["Fn::Sub"])
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return self.get_att(logical, attribute)
        return {k: self.resolve(v) for k, v in value.items()}

    def pseudo(self, name: str) -> str:
        return {
            "AWS::StackName": self.stack,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }[name]

    def sub(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([\w:.]+)\}", one, text)

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.doc.get("Parameters", {}):
            default = self.doc["Parameters"][name].get("Default")
            return self.parameters.get(name, "" if default is None else str(default))
        kind = self.resources[name]["Type"]
        if kind == "AWS::S3::Bucket":
            return self.bucket_name(name)
        if kind == "AWS::SQS::Queue":
            return self.queue_url(name)
        return name  # functions, layers, APIs: their logical id stands in

    def get_att(self, logical: str, attribute: str) -> Any:
        kind = self.resources[logical]["Type"]
        if kind == "AWS::SQS::Queue":
            name = self.queue_name(logical)
            return {
                "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "QueueName": name,
                "QueueUrl": self.queue_url(logical),
            }[attribute]
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self.bucket_name(logical)}"
        raise KeyError(f"{logical}.{attribute} has no local value")

    # --- resources ---------------------------------------------------------------------

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def bucket_name(self, logical: str) -> str:
        return str(self.resolve(self.resources[logical]["Properties"]["BucketName"]))

    def queue_name(self, logical: str) -> str:
        return str(self.resolve(self.resources[logical]["Properties"]["QueueName"]))

    def queue_url(self, logical: str) -> str:
        return f"{self.endpoint}/{ACCOUNT}/{self.queue_name(logical)}"

    def functions(self) -> dict[str, Function]:
        glob = self.doc.get("Globals", {}).get("Function", {})
        base_env = glob.get("Environment", {}).get("Variables", {})
        out = {}
        for name, res in self.of_type("AWS::Serverless::Function").items():
            props = res["Properties"]
            env = {**base_env, **props.get("Environment", {}).get("Variables", {})}
            out[name] = Function(
                name=name,
                code_dir=self.root / props["CodeUri"],
                handler=props.get("Handler", glob.get("Handler", "app.handler")),
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                memory=int(props.get("MemorySize", glob.get("MemorySize", 128))),
                environment={k: str(self.resolve(v)) for k, v in env.items()},
            )
        return out

    def _events(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for name, res in self.of_type("AWS::Serverless::Function").items():
            for event in res["Properties"].get("Events", {}).values():
                if event["Type"] == kind:
                    found.append((name, event["Properties"]))
        return found

    def routes(self) -> list[Route]:
        return [Route(p["Method"].upper(), p["Path"], fn) for fn, p in self._events("HttpApi")]

    def queue_sources(self) -> list[QueueSource]:
        sources = []
        for fn, p in self._events("SQS"):
            logical = p["Queue"]["Fn::GetAtt"][0]
            concurrency = int(self.resolve(p.get("ScalingConfig", {}).get("MaximumConcurrency", 2)))
            sources.append(QueueSource(fn, logical, int(p.get("BatchSize", 10)), concurrency))
        return sources

    def schedules(self) -> list[Schedule]:
        out = []
        for fn, p in self._events("Schedule"):
            match = _RATE.match(p["Schedule"])
            if not match:
                raise ValueError(f"{fn}: only rate(N unit) schedules run locally")
            out.append(Schedule(fn, int(match.group(1)) * _UNIT[match.group(2)]))
        return out

    def cors(self) -> dict[str, Any]:
        for res in self.of_type("AWS::Serverless::HttpApi").values():
            return dict(res.get("Properties", {}).get("CorsConfiguration", {}))
        return {}
