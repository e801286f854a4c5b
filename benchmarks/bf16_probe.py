"""Can onnxruntime's CPU provider run this model's heavy ops in bfloat16 (or float16)?

    python -m benchmarks.bf16_probe

Builds a one-node graph per op and type and asks onnxruntime for a CPU session: kernel
lookup happens there, so a missing kernel fails at once. The CPU's bf16 instructions
(avx512_bf16, amx_bf16) only matter if a kernel uses them. Measured with onnxruntime
1.31.1: Conv, Gemm and MatMul have no bf16 CPU kernel (NOT_IMPLEMENTED; at opset 17, the
export's, Conv does not even accept bf16), so a bf16 AlexNet cannot run on the CPU
provider. fp16 kernels exist, but ran the fp16 model at fp32's speed on a CPU without
AVX512-FP16 (issue 17).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

OPS = ("Conv", "Gemm", "MatMul")
TYPES = {"bfloat16": TensorProto.BFLOAT16, "float16": TensorProto.FLOAT16}
OPSETS = (17, 22)


def one_node(op: str, dtype: int, opset: int) -> onnx.ModelProto:
    """A graph of one `op` on `dtype` tensors shaped like a small layer of the model."""
    shapes = ([1, 8, 16, 16], [8, 8, 3, 3]) if op == "Conv" else ([4, 64], [64, 64])
    inputs = [helper.make_tensor_value_info(n, dtype, s) for n, s in zip("xw", shapes, strict=True)]
    output = helper.make_tensor_value_info("y", dtype, None)
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "probe", inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def probe() -> dict[str, str]:
    """'op type opset' -> 'runs' or onnxruntime's reason, for each op, type and opset."""
    import onnxruntime as ort

    from core.runtime import CPU

    found = {}
    for opset in OPSETS:
        for name, dtype in TYPES.items():
            for op in OPS:
                key = f"{op} {name} opset {opset}"
                try:
                    model = one_node(op, dtype, opset).SerializeToString()
                    ort.InferenceSession(model, providers=[CPU])
                    found[key] = "runs"
                except Exception as exc:  # onnxruntime's own error types; the reason is the point
                    text = str(exc).replace("\n", " ")
                    found[key] = text.split(" : ", 2)[-1][:120] if " : " in text else text[:120]
    return found


def summary(found: dict[str, str]) -> str:
    """One line for the bench report: each op's bf16 outcome by opset, and what fp16 runs."""
    outcomes = []
    for op in OPS:
        by_opset = [f"opset {o}: {found[f'{op} bfloat16 opset {o}'].split(' ')[0]}" for o in OPSETS]
        outcomes.append(f"{op} {', '.join(by_opset)}")
    fp16 = [op for op in OPS if all(found[f"{op} float16 opset {o}"] == "runs" for o in OPSETS)]
    return f"bf16 {'; '.join(outcomes)} (fp16 kernels: {', '.join(fp16) or 'none'})"


def main() -> None:
    for key, value in probe().items():
        print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
