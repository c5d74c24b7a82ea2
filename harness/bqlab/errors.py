"""Exceptions that map onto the CLI's exit-code contract."""

from enum import IntEnum


class ExitCode(IntEnum):
    PASS = 0
    VERDICT_FAILED = 1
    BAD_INPUT = 2
    INFRA_FAILURE = 3


class BqlabError(Exception):
    """Base class: every bqlab error knows which exit code it means."""

    exit_code = ExitCode.INFRA_FAILURE


class BadInput(BqlabError):
    """The user gave us something we cannot use (scenario file, option, path)."""

    exit_code = ExitCode.BAD_INPUT


class InfraError(BqlabError):
    """Building, booting or talking to a VM failed: not a verdict about the DUT."""

    exit_code = ExitCode.INFRA_FAILURE


class MissingTool(InfraError):
    """A host tool is missing; the message says how to get it."""

    def __init__(self, tool: str, how: str):
        super().__init__(f"{tool} is missing: {how}")
        self.tool = tool
        self.how = how
