"""The JSON envelope of an Open Inference Protocol (KServe v2) inference request.

Pydantic checks the shape of the request (names, datatypes, shapes, parameters);
the tensor data itself stays out of pydantic's hands (`data` is taken as parsed
JSON, binary tensors as bytes) and becomes numpy in `service.v2.codec`. Fields the
protocol leaves open (parameters a client adds) are kept, not refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Size = Annotated[int, Field(ge=0, strict=True)]


class Open(BaseModel):
    """Parameters objects: the keys this server reads are typed, others are allowed."""

    model_config = ConfigDict(extra="allow")


class InputParameters(Open):
    binary_data_size: Size | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_shared_memory(cls, value: Any) -> Any:
        if isinstance(value, dict) and "shared_memory_region" in value:
            raise ValueError("shared memory is not supported over this server")
        return value


class InputSpec(BaseModel):
    name: str
    datatype: Datatype
    shape: list[Size]
    parameters: InputParameters = InputParameters()
    data: Any = None  # the JSON form; absent when the tensor is binary


class OutputParameters(Open):
    binary_data: bool | None = None
    classification: Size = 0


class OutputSpec(BaseModel):
    name: str
    parameters: OutputParameters = OutputParameters()


class RequestParameters(Open):
    binary_data_output: bool = False


class InferRequestHeader(BaseModel):
    """The JSON part of a request (all of it, without the binary tensor extension)."""

    id: str | None = None
    inputs: list[InputSpec] = Field(min_length=1)
    outputs: list[OutputSpec] | None = None
    parameters: RequestParameters = RequestParameters()
