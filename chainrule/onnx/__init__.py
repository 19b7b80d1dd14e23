"""ONNX export: ``chainrule.onnx.export(model, (example,), "model.onnx", dynamic_axes=...)``.

The exporter walks the model's modules (``modules.py``: a converter per module type, ``register`` for your own)
and writes each with the ONNX forms of chainrule's functional ops (``ops.py``) into a graph builder
(``graph.py``). Needs the ``onnx`` package (``pip install 'chainrule[onnx]'``); ``verify=True`` runs the file
in onnxruntime when it is installed, else in onnx's reference evaluator.

Toward a general exporter (arbitrary forward code, not only modules with converters): ``chainrule.compiler``
captures a call as numpy-level instructions (ufuncs, ``matmul``, reshapes) plus opaque backend calls
(``layer_norm_rows``, ``convolve``, ``gelu``, ``softmax_rows``), each attributed to its op and module. A
front end that maps those instructions onto the emitters of ``ops.py`` (and onto ``GraphBuilder.op`` for
plain ufuncs) would reuse everything below the module walk. What it still needs: the forward part of a
trace without the backward, op attributes recorded with each instruction (reshape targets, axes, eps), and
symbolic sizes for dynamic axes (two captures at different sizes, whose differing dims become symbols).
"""

from chainrule.onnx.export import IR_VERSION, MAX_OPSET, MIN_OPSET, export, verify
from chainrule.onnx.graph import ExportError, GraphBuilder, UnsupportedModuleError
from chainrule.onnx.modules import convert, register

__all__ = ["export", "verify", "register", "convert", "GraphBuilder", "ExportError", "UnsupportedModuleError",
           "IR_VERSION", "MIN_OPSET", "MAX_OPSET"]
