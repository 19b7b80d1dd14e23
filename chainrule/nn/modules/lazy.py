"""Lazy modules, as PyTorch's: the input size is left out and read from the first input.

    layer = nn.LazyLinear(10)          # weight is an UninitializedParameter
    opt = optim.SGD(model.parameters(), lr=0.1)   # allowed, as in PyTorch: the same objects materialise
    layer(torch.randn(32, 784))        # now a Linear(784, 10): weight (10, 784), initialised as Linear's

A forward pre-hook calls ``initialize_parameters(*inputs)``, which gives every ``UninitializedParameter`` /
``UninitializedBuffer`` its shape in place (the tensor object keeps its identity and becomes a plain
Parameter / Tensor, so an optimizer built before the first forward holds the live parameters), runs the
layer's ``reset_parameters`` and turns the module into ``cls_to_become`` (``LazyLinear`` -> ``Linear``).
"""

from __future__ import annotations

from chainrule.autograd.grad_mode import no_grad
from chainrule.creation import empty
from chainrule.nn.modules.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from chainrule.nn.modules.linear import Linear
from chainrule.nn.modules.normalization import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
)
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor

__all__ = ["UninitializedParameter", "UninitializedBuffer", "LazyModuleMixin", "LazyLinear", "LazyConv1d",
           "LazyConv2d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyBatchNorm1d", "LazyBatchNorm2d"]
__all__ += ["LazyConv3d", "LazyConvTranspose3d", "LazyBatchNorm3d", "LazyInstanceNorm1d", "LazyInstanceNorm2d",
            "LazyInstanceNorm3d"]


class UninitializedTensorMixin:
    """A tensor with no shape yet; :meth:`materialize` gives it one, in place."""

    __slots__ = ()
    cls_to_become: type = Tensor

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Allocate (uninitialised) data of ``shape`` and turn into ``cls_to_become``, keeping identity."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        data = empty(*shape, dtype=dtype or self.dtype, device=device or self.device)
        self._swap_data(data._data)
        self.__class__ = self.cls_to_become

    @property
    def shape(self):
        raise RuntimeError(
            "Can't access the shape of an uninitialized parameter or buffer. This error usually happens in "
            "`load_state_dict` when trying to load an uninitialized parameter into an initialized one. Call "
            "`forward` to initialize the parameters before accessing their attributes."
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A Parameter whose shape is not known yet (``torch.nn.parameter.UninitializedParameter``)."""

    __slots__ = ()
    cls_to_become = Parameter

    def __new__(cls, requires_grad: bool = True, device=None, dtype=None):
        param = Parameter.__new__(Parameter, empty(0, dtype=dtype, device=device), requires_grad)
        param.__class__ = cls
        return param

    def __init__(self, requires_grad: bool = True, device=None, dtype=None):
        pass


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer whose shape is not known yet (``torch.nn.parameter.UninitializedBuffer``)."""

    __slots__ = ()
    cls_to_become = Tensor

    def __new__(cls, requires_grad: bool = False, device=None, dtype=None):
        t = empty(0, dtype=dtype, device=device, requires_grad=requires_grad)
        t.__class__ = cls
        return t

    def __init__(self, requires_grad: bool = False, device=None, dtype=None):
        pass


def _is_lazy(t) -> bool:
    return isinstance(t, UninitializedTensorMixin)


class LazyModuleMixin:
    """Infers parameter shapes from the first input (``torch.nn.modules.lazy.LazyModuleMixin``)."""

    cls_to_become: type | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_initialize_hook", self.register_forward_pre_hook(_infer_parameters))

    def has_uninitialized_params(self) -> bool:
        return any(_is_lazy(t) for t in (*self._parameters.values(), *self._buffers.values()))

    def initialize_parameters(self, *args, **kwargs) -> None:
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False):
        """As PyTorch's: uninitialised tensors take the shapes of the checkpoint's, then are loaded."""
        for table in (self._parameters, self._buffers):
            for name, t in table.items():
                if _is_lazy(t) and name in state_dict:
                    t.materialize(tuple(state_dict[name].shape))
        return super().load_state_dict(state_dict, strict, assign)


def _infer_parameters(module: LazyModuleMixin, args: tuple) -> None:
    module.initialize_parameters(*args)
    if module.has_uninitialized_params():
        raise RuntimeError(f"module {type(module).__name__} has not been fully initialized")
    module._initialize_hook.remove()
    object.__delattr__(module, "_initialize_hook")
    if module.cls_to_become is not None:
        module.__class__ = module.cls_to_become


class LazyLinear(LazyModuleMixin, Linear):
    """Linear whose ``in_features`` is ``input.shape[-1]`` of the first input."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(0, 0, False, dtype=dtype, device=device)
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_features = out_features
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input) -> None:
        if self.has_uninitialized_params():
            with no_grad():
                self.in_features = input.shape[-1]
                self.weight.materialize((self.out_features, self.in_features))
                if self.bias is not None:
                    self.bias.materialize((self.out_features,))
                self.reset_parameters()
        if self.in_features == 0:  # loaded from a state dict before the first forward, as PyTorch
            if input.shape[-1] != self.weight.shape[-1]:
                raise AssertionError(f"The in_features inferred from input: {input.shape[-1]} is not equal to "
                                     f"in_features from self.weight: {self.weight.shape[-1]}")
            self.in_features = input.shape[-1]


class _LazyConvXdMixin(LazyModuleMixin):
    def _lazy_init(self, out_channels: int, bias: bool, device, dtype) -> None:
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.out_channels = out_channels
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, input, *args, **kwargs) -> None:
        if not self.has_uninitialized_params():
            return
        with no_grad():
            self.in_channels = self._get_in_channels(input)
            if self.in_channels % self.groups != 0:
                raise ValueError(f"{type(self).__name__}: in_channels ({self.in_channels}) must be divisible by "
                                 f"groups ({self.groups})")
            if self.transposed:
                self.weight.materialize((self.in_channels, self.out_channels // self.groups, *self.kernel_size))
            else:
                self.weight.materialize((self.out_channels, self.in_channels // self.groups, *self.kernel_size))
            if self.bias is not None:
                self.bias.materialize((self.out_channels,))
            self.reset_parameters()

    def _get_in_channels(self, input) -> int:
        unbatched = self._dims + 1
        if input.ndim not in (unbatched, unbatched + 1):
            raise ValueError(f"Expected {unbatched}D (unbatched) or {unbatched + 1}D (batched) input to "
                             f"{type(self).__name__}, but got input of size: {tuple(input.shape)}")
        return input.shape[1] if input.ndim == unbatched + 1 else input.shape[0]


def _lazy_conv_init(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                    bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
    LazyModuleMixin.__init__(self, 0, 0, kernel_size, stride, padding, dilation, groups, False, padding_mode,
                             dtype=dtype, device=device)
    self._lazy_init(out_channels, bias, device, dtype)


def _lazy_conv_transpose_init(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                              groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                              dtype=None):
    LazyModuleMixin.__init__(self, 0, 0, kernel_size, stride, padding, output_padding, groups, False, dilation,
                             padding_mode, device=device, dtype=dtype)
    self._lazy_init(out_channels, bias, device, dtype)


class LazyConv1d(_LazyConvXdMixin, Conv1d):
    cls_to_become = Conv1d
    __init__ = _lazy_conv_init


class LazyConv2d(_LazyConvXdMixin, Conv2d):
    cls_to_become = Conv2d
    __init__ = _lazy_conv_init


class LazyConvTranspose1d(_LazyConvXdMixin, ConvTranspose1d):
    cls_to_become = ConvTranspose1d
    __init__ = _lazy_conv_transpose_init


class LazyConvTranspose2d(_LazyConvXdMixin, ConvTranspose2d):
    cls_to_become = ConvTranspose2d
    __init__ = _lazy_conv_transpose_init


class LazyConv3d(_LazyConvXdMixin, Conv3d):
    cls_to_become = Conv3d
    __init__ = _lazy_conv_init


class LazyConvTranspose3d(_LazyConvXdMixin, ConvTranspose3d):
    cls_to_become = ConvTranspose3d
    __init__ = _lazy_conv_transpose_init


class _LazyNormBase(LazyModuleMixin):
    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        from chainrule.creation import tensor
        from chainrule.dtypes import int64

        super().__init__(0, eps, momentum, False, False, dtype=dtype)
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = tensor(0, dtype=int64)

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params() or self.num_features == 0:
            return
        self.reset_running_stats()
        if self.affine:
            self.weight.fill_(1)
            self.bias.zero_()

    def initialize_parameters(self, input) -> None:
        if not self.has_uninitialized_params():
            return
        with no_grad():
            self.num_features = input.shape[1]
            if self.affine:
                self.weight.materialize((self.num_features,))
                self.bias.materialize((self.num_features,))
            if self.track_running_stats:
                self.running_mean.materialize((self.num_features,))
                self.running_var.materialize((self.num_features,))
            self.reset_parameters()


class LazyBatchNorm1d(_LazyNormBase, BatchNorm1d):
    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_LazyNormBase, BatchNorm2d):
    cls_to_become = BatchNorm2d


class LazyBatchNorm3d(_LazyNormBase, BatchNorm3d):
    cls_to_become = BatchNorm3d


# PyTorch's lazy instance norms keep _LazyNormBase's defaults (affine=True, track_running_stats=True), unlike
# InstanceNorm*d's, and read the features from dim 1 even for unbatched input
class LazyInstanceNorm1d(_LazyNormBase, InstanceNorm1d):
    cls_to_become = InstanceNorm1d


class LazyInstanceNorm2d(_LazyNormBase, InstanceNorm2d):
    cls_to_become = InstanceNorm2d


class LazyInstanceNorm3d(_LazyNormBase, InstanceNorm3d):
    cls_to_become = InstanceNorm3d
