"""How much of PyTorch's public API chainrule has: ``python -m chainrule.compat [--missing NAMESPACE]``.

For each PyTorch namespace a program reaches for (``torch``, ``torch.Tensor``, ``torch.nn``,
``torch.nn.functional``, ``torch.linalg``, ``torch.fft``, ``torch.special``, ``torch.distributions``) the
report counts the public names of the installed PyTorch that chainrule has under the same name, the names
left out on purpose (each with its reason: quantization, sparse layouts, named tensors, raw storage,
device-specific and compiler-internal names, functions PyTorch itself has removed), and lists what is
still missing. Coverage is counted over the names in scope. PyTorch must be installed; chainrule never
imports it otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import inspect
import sys
from dataclasses import dataclass, field

__all__ = ["OUT_OF_SCOPE", "Coverage", "coverage", "main"]

# reason -> name patterns (fnmatch) left out on purpose, in every namespace
OUT_OF_SCOPE: dict[str, tuple[str, ...]] = {
    "quantization": ("*quantize*", "q_*", "qscheme", "int_repr", "*qparams*", "fake_quant*", "fbgemm_*",
                     "*fake_quant*", "quint*", "qint*"),
    "sparse layouts": ("*sparse*", "ccol_indices*", "col_indices*", "crow_indices*", "row_indices*", "indices",
                       "indices_copy", "values",
                       "values_copy", "coalesce", "is_coalesced", "to_dense", "dense_dim", "smm", "spmm", "hsmm",
                       "dsmm", "hspmm", "sspaddmm", "saddmm", "to_mkldnn", "is_mkldnn", "segment_reduce"),
    "named tensors": ("names", "name", "rename", "rename_", "refine_names", "align_to", "align_as"),
    "raw storage and strides": ("*storage*", "set_", "is_set_to", "share_memory_", "is_shared", "data_ptr",
                                "const_data_ptr", "resize_*", "resize", "as_strided*", "from_file", "frombuffer",
                                "empty_strided", "new_empty_strided", "dim_order", "untyped_storage"),
    "accelerators other than CUDA, and device internals": ("ipu", "xpu", "mtia", "is_ipu", "is_xpu", "is_mtia",
                                                           "is_maia", "is_mps", "is_xla", "is_vulkan",
                                                           "is_vulkan_available", "is_meta", "record_stream",
                                                           "cudnn_*", "miopen_*", "mkldnn_*", "get_device_module",
                                                           "to_padded_tensor", "is_nested", "nonzero_static"),
    "autocast's per-device switches (use the autocast context), bfloat16 and complex32 (numpy has neither dtype), "
    "low-precision GEMMs": (
        "*autocast*", "bfloat16", "chalf", "scaled_mm", "scaled_grouped_mm", "grouped_mm", "ScalingType",
        "SwizzleType"),
    "typing re-exports and the __torch_function__ protocol": ("Callable", "Optional", "DType", "boolean_dispatch",
                                                              "handle_torch_function", "has_torch_function*",
                                                              "assert_int_or_pair", "factory_kwargs", "as_subclass"),
    "TorchScript, compiler and runtime internals": (
        "parse_ir", "parse_schema", "parse_type_comment", "import_ir_module*", "merge_type_from_type_comment",
        "unify_type_list", "fork", "wait", "sym_*", "compiled_with_cxx11_abi", "classproperty", "compile", "cond",
        "while_loop", "prepare_multiprocessing_environment", "profiler_*", "thread_safe_generator",
        "get_file_path", "native_*", "batch_norm_backward_*", "batch_norm_gather_stats*", "batch_norm_stats",
        "batch_norm_elemt", "batch_norm_update_stats", "grid_sampler_2d", "grid_sampler_3d", "conv_tbc",
        "affine_grid_generator", "module_load", "output_nr", "hash_tensor", "slice_inverse", "grad_dtype",
        "is_inference", "is_inference_mode_enabled", "init_num_threads", "set_flush_denormal", "typename",
        "set_default_tensor_type", "embedding_renorm_", "rsub", "norm_except_dim", "is_distributed",
        "is_warn_always_enabled", "set_warn_always", "layout", "is_storage", "Container",
    ),
    "removed from PyTorch (calling them raises there)": ("symeig", "eig", "lstsq", "solve", "matrix_rank",
                                                         "volatile", "reinforce"),
}

_OUT_OF_SCOPE_BY_NAMESPACE: dict[str, dict[str, tuple[str, ...]]] = {
    # torch.lstsq/solve/eig were removed, but their torch.linalg and Tensor namesakes are alive
    "torch.linalg": {},
}

# the classes of torch.* that programs use directly (its other classes are counted as out of scope by omission)
_TORCH_CLASSES = {"Tensor", "Generator", "Size", "device", "dtype", "finfo", "iinfo", "no_grad", "enable_grad",
                  "set_grad_enabled", "inference_mode"}

NAMESPACES = {  # PyTorch namespace -> chainrule's
    "torch": "chainrule",
    "torch.Tensor": "chainrule.Tensor",
    "torch.nn": "chainrule.nn",
    "torch.nn.functional": "chainrule.nn.functional",
    "torch.linalg": "chainrule.linalg",
    "torch.fft": "chainrule.fft",
    "torch.special": "chainrule.special",
    "torch.distributions": "chainrule.distributions",
}


@dataclass
class Coverage:
    namespace: str
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)  # reason -> names

    @property
    def in_scope(self) -> int:
        return len(self.present) + len(self.missing)

    @property
    def percent(self) -> float:
        return 100.0 * len(self.present) / max(self.in_scope, 1)


def _resolve(dotted: str):
    """``"torch.Tensor"`` -> the object; None when the module does not exist (e.g. chainrule.fft before it is built)."""
    module_name, _, attr = dotted.rpartition(".")
    for name, rest in ((dotted, None), (module_name, attr)):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module if rest is None else getattr(module, rest, None)
    return None


def _public_api(obj, namespace: str) -> list[str]:
    """Public callables and classes of a namespace (not its submodules, constants or re-exported typing names)."""
    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name, None)
        if inspect.ismodule(value) or (namespace == "torch" and inspect.isclass(value) and name not in _TORCH_CLASSES):
            continue  # torch.* is counted by its functions: its other classes are storage, JIT and type-system names
        if namespace == "torch.Tensor" or callable(value) or isinstance(value, property):
            names.append(name)
    return sorted(names)


def _reason_left_out(name: str, namespace: str) -> str | None:
    table = _OUT_OF_SCOPE_BY_NAMESPACE.get(namespace, OUT_OF_SCOPE)
    for reason, patterns in table.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return reason
    return None


def coverage(namespace: str) -> Coverage:
    """What chainrule has of the PyTorch namespace ``namespace`` (a key of :data:`NAMESPACES`)."""
    theirs = _resolve(namespace)
    if theirs is None:
        raise ImportError(f"chainrule.compat: {namespace} is not importable; install PyTorch to compare against it")
    ours = _resolve(NAMESPACES[namespace])
    result = Coverage(namespace)
    for name in _public_api(theirs, namespace):
        reason = _reason_left_out(name, namespace)
        if ours is not None and hasattr(ours, name):
            result.present.append(name)
        elif reason is not None:
            result.left_out.setdefault(reason, []).append(name)
        else:
            result.missing.append(name)
    return result


def _summary_table(results: list[Coverage]) -> str:
    lines = ["| PyTorch namespace | chainrule has | in scope | coverage | left out on purpose |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        left_out = sum(len(v) for v in r.left_out.values())
        lines.append(f"| `{r.namespace}` | {len(r.present)} | {r.in_scope} | {r.percent:.0f}% | {left_out} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chainrule.compat", description=__doc__.splitlines()[0])
    parser.add_argument("--missing", metavar="NAMESPACE", help="list the missing names of one namespace")
    parser.add_argument("--left-out", metavar="NAMESPACE", help="list the names left out on purpose, by reason")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("chainrule.compat: PyTorch is not installed; it is what the report compares against", file=sys.stderr)
        return 2
    for wanted in (args.missing, args.left_out):
        if wanted is not None and wanted not in NAMESPACES:
            print(f"chainrule.compat: unknown namespace {wanted!r}; one of {', '.join(NAMESPACES)}", file=sys.stderr)
            return 2
    if args.missing:
        print("\n".join(coverage(args.missing).missing))
        return 0
    if args.left_out:
        for reason, names in coverage(args.left_out).left_out.items():
            print(f"{reason}: {' '.join(names)}")
        return 0
    print(f"chainrule's coverage of PyTorch {torch.__version__}'s public names\n")
    print(_summary_table([coverage(namespace) for namespace in NAMESPACES]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
