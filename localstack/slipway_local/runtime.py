"""Lambda, locally: each function instance is a process that imports the function's
handler with the template's environment and serves one invocation at a time. Instances
are started on demand (cold start), reused while warm, and killed past their timeout."""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from slipway_local.template import ACCOUNT, REGION, Function

log = logging.getLogger("slipway_local.runtime")
_SPAWN = multiprocessing.get_context("spawn")


class FunctionError(RuntimeError):
    """The handler raised, timed out, or its instance died (what Lambda reports)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def _instance_main(spec: dict[str, Any], conn: Connection) -> None:
    """The instance process: import the handler once, then serve invocations."""
    os.environ.update(spec["env"])
    sys.path.insert(0, spec["code_dir"])
    try:
        module_name, attribute = spec["handler"].rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        event, request_id, deadline = message
        context = LambdaContext(spec["name"], spec["memory"], request_id, deadline)
        try:
            conn.send(("ok", handler(event, context)))
        except Exception as exc:
            traceback.print_exc()
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Instance:
    def __init__(self, function: Function, env: dict[str, str]) -> None:
        self.function = function
        self.conn, child = _SPAWN.Pipe()
        spec = {
            "name": function.name,
            "code_dir": str(function.code_dir.resolve()),
            "handler": function.handler,
            "memory": function.memory,
            "env": {
                **env,
                **function.environment,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
            },
        }
        self.process = _SPAWN.Process(
            target=_instance_main, args=(spec, child), daemon=True, name=f"lambda-{function.name}"
        )
        self.process.start()
        child.close()
        if not self.conn.poll(120):
            self.kill()
            raise FunctionError("InitTimeout", f"{function.name} did not start")
        kind, detail = self.conn.recv()
        if kind != "ready":
            self.kill()
            raise FunctionError("InitError", str(detail))

    def invoke(self, event: Any, timeout: float) -> Any:
        request_id = str(uuid.uuid4())
        try:
            self.conn.send((event, request_id, time.time() + timeout))
            ready = self.conn.poll(timeout + 1)
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise FunctionError("InstanceDied", str(exc)) from exc
        if not ready:
            self.kill()
            raise FunctionError("Timeout", f"{self.function.name} ran past {timeout:.0f} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError as exc:
            self.kill()
            raise FunctionError("InstanceDied", f"{self.function.name} exited") from exc
        if kind != "ok":
            raise FunctionError("Unhandled", str(payload))
        return payload

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing to ask
            self.conn.send(None)
        self.process.join(3)
        self.kill()


class FunctionPool:
    """Warm instances of one function, up to `max_instances` at once."""

    def __init__(self, function: Function, env: dict[str, str], max_instances: int = 8) -> None:
        self.function, self.env, self.max_instances = function, env, max_instances
        self._idle: list[Instance] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def _acquire(self) -> Instance:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("Shutdown", "the local stack is stopping")
                while self._idle:
                    instance = self._idle.pop()
                    if instance.alive():
                        return instance
                    self._count -= 1
                if self._count < self.max_instances:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return Instance(self.function, self.env)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, instance: Instance) -> None:
        with self._cond:
            if instance.alive() and not self._closed:
                self._idle.append(instance)
            else:
                self._count -= 1
            self._cond.notify()
        if self._closed:
            instance.close()

    def invoke(self, event: Any, timeout: float | None = None) -> Any:
        instance = self._acquire()
        try:
            return instance.invoke(
                event, min(timeout or self.function.timeout, self.function.timeout)
            )
        finally:
            self._release(instance)

    def warm(self) -> None:
        """Start one instance ahead of the first invocation (no cold start then)."""
        self._release(self._acquire())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for instance in idle:
            instance.close()
