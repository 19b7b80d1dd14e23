"""ONNX export: ``chainrule.onnx.export(model, (example,), "model.onnx", dynamic_axes=...)``.

The exporter walks the model's modules (``modules.py``: a converter per module type, ``register`` for your own)
and writes each with the ONNX forms of chainrule's functional ops (``ops.py``) into a graph builder
(``graph.py``). Needs the ``onnx`` package (``pip install 'chainrule[onnx]'``); ``verify=True`` runs the file
in onnxruntime when it is installed, else in onnx's reference evaluator.
"""

from chainrule.onnx.export import IR_VERSION, MAX_OPSET, MIN_OPSET, export, verify
from chainrule.onnx.graph import ExportError, GraphBuilder, UnsupportedModuleError
from chainrule.onnx.modules import convert, register

__all__ = ["export", "verify", "register", "convert", "GraphBuilder", "ExportError", "UnsupportedModuleError",
           "IR_VERSION", "MIN_OPSET", "MAX_OPSET"]
