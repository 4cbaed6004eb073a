"""STAND-IN for `vllm.v1.engine.exceptions`."""

from tests.support.vllm_standin import StandInEngineDeadError as EngineDeadError

__all__ = ["EngineDeadError"]
