"""Bad input raises at the operation, with an error of PyTorch's type whose message names the
operation and the offending shapes or dtypes. Each case is written once for both libraries, and
PyTorch (when installed) must refuse the same input, so no test asserts an error PyTorch would
not give."""

import gc
import re
from collections import Counter

import numpy as np
import pytest
from op_cases import TORCH

import chainrule as cr
from chainrule.autograd.graph import Node

try:
    import torch
except ImportError:
    torch = None


def ones(m, *shape, dtype=None):
    return m.ones(*shape, dtype=dtype)


def f32(m):
    return m.float32


def f64(m):
    return m.float64


# (id, call(lib), error type, regex the chainrule message must match)
ERRORS = [
    # broadcasting
    ("add-broadcast", lambda m: m.add(ones(m, 2, 3), ones(m, 4)), RuntimeError, r"add.*\(2, 3\).*\(4,\)"),
    ("mul-broadcast", lambda m: ones(m, 3, 1, 2) * ones(m, 4, 3), RuntimeError, r"mul.*\(3, 1, 2\).*\(4, 3\)"),
    ("sub-broadcast", lambda m: m.sub(ones(m, 2), ones(m, 3)), RuntimeError, r"sub.*\(2,\).*\(3,\)"),
    ("div-broadcast", lambda m: m.div(ones(m, 2), ones(m, 3)), RuntimeError, r"div.*\(2,\).*\(3,\)"),
    ("pow-broadcast", lambda m: m.pow(ones(m, 2), ones(m, 3)), RuntimeError, r"pow.*\(2,\).*\(3,\)"),
    ("maximum-broadcast", lambda m: m.maximum(ones(m, 2), ones(m, 3)), RuntimeError, r"maximum.*\(2,\).*\(3,\)"),
    ("where-broadcast", lambda m: m.where(ones(m, 2) > 0, ones(m, 3), ones(m, 2)), RuntimeError, r"where.*\(2,\).*\(3,\)"),
    ("where-condition-dtype", lambda m: m.where(ones(m, 2), ones(m, 2), ones(m, 2)), RuntimeError,
     r"where.*condition.*bool.*float32"),
    ("clamp-no-bounds", lambda m: m.clamp(ones(m, 2)), RuntimeError, r"clamp.*min.*max"),
    # linear algebra
    ("matmul-inner", lambda m: m.matmul(ones(m, 2, 3), ones(m, 4, 5)), RuntimeError, r"matmul.*\(2, 3\).*\(4, 5\)"),
    ("matmul-vector", lambda m: m.matmul(ones(m, 3), ones(m, 4)), RuntimeError, r"matmul.*\(3,\).*\(4,\)"),
    ("matmul-batch", lambda m: m.matmul(ones(m, 2, 2, 3), ones(m, 3, 3, 4)), RuntimeError,
     r"matmul.*\(2, 2, 3\).*\(3, 3, 4\)"),
    ("matmul-0d", lambda m: m.matmul(ones(m), ones(m, 3)), RuntimeError, r"matmul.*\(\).*\(3,\)"),
    ("matmul-dtypes", lambda m: m.matmul(ones(m, 2, 3, dtype=f32(m)), ones(m, 3, 2, dtype=f64(m))), RuntimeError,
     r"matmul.*float32.*float64"),
    ("matmul-operator-dtypes", lambda m: ones(m, 2, 3, dtype=f64(m)) @ ones(m, 3, dtype=f32(m)), RuntimeError,
     r"matmul.*float64.*float32"),
    ("mm-3d", lambda m: m.mm(ones(m, 2, 2, 3), ones(m, 3, 2)), RuntimeError, r"mm.*\(2, 2, 3\)"),
    ("mm-inner", lambda m: m.mm(ones(m, 2, 3), ones(m, 2, 3)), RuntimeError, r"mm.*\(2, 3\).*\(2, 3\)"),
    ("mm-dtypes", lambda m: m.mm(ones(m, 2, 3, dtype=f32(m)), ones(m, 3, 2, dtype=f64(m))), RuntimeError,
     r"mm.*float32.*float64"),
    ("bmm-batch", lambda m: m.bmm(ones(m, 2, 2, 3), ones(m, 3, 3, 2)), RuntimeError, r"bmm.*\(2, 2, 3\).*\(3, 3, 2\)"),
    ("dot-sizes", lambda m: m.dot(ones(m, 3), ones(m, 4)), RuntimeError, r"dot.*\(3,\).*\(4,\)"),
    ("dot-dtypes", lambda m: m.dot(ones(m, 3, dtype=f32(m)), ones(m, 3, dtype=f64(m))), RuntimeError,
     r"dot.*float32.*float64"),
    ("outer-2d", lambda m: m.outer(ones(m, 2, 2), ones(m, 3)), RuntimeError, r"outer.*\(2, 2\)"),
    ("inner-sizes", lambda m: m.inner(ones(m, 2, 3), ones(m, 4)), RuntimeError, r"inner.*\(2, 3\).*\(4,\)"),
    ("einsum-operand-count", lambda m: m.einsum("ij,jk->ik", ones(m, 2, 3)), RuntimeError, r"einsum.*2 operands.*1"),
    ("einsum-subscripts", lambda m: m.einsum("ij,jk->ik", ones(m, 2, 3), ones(m, 3)), RuntimeError,
     r"einsum.*'jk'.*1 dims"),
    ("einsum-sizes", lambda m: m.einsum("ij,jk->ik", ones(m, 2, 3), ones(m, 4, 2)), RuntimeError,
     r"einsum.*\(2, 3\).*\(4, 2\)"),
    # shapes
    ("reshape-size", lambda m: ones(m, 2, 3).reshape(4), RuntimeError, r"reshape.*\[4\].*6.*\(2, 3\)"),
    ("view-size", lambda m: ones(m, 2, 3).view(5, -1), RuntimeError, r"\[5, -1\].*6.*\(2, 3\)"),
    ("reshape-two-unknowns", lambda m: ones(m, 2, 3).reshape(-1, -1), RuntimeError, r"reshape.*\[-1, -1\]"),
    ("cat-sizes", lambda m: m.cat([ones(m, 2, 3), ones(m, 2, 4)], 0), RuntimeError, r"cat.*\(2, 3\).*\(2, 4\)"),
    ("cat-ndims", lambda m: m.cat([ones(m, 2, 3), ones(m, 2, 3, 1)], 1), RuntimeError, r"cat.*\(2, 3\).*\(2, 3, 1\)"),
    ("cat-empty-list", lambda m: m.cat([], 0), RuntimeError, r"cat.*non-empty"),
    ("cat-dim", lambda m: m.cat([ones(m, 2), ones(m, 2)], 1), IndexError, r"cat.*dimension out of range.*1"),
    ("stack-sizes", lambda m: m.stack([ones(m, 2, 3), ones(m, 3, 2)]), RuntimeError, r"stack.*\(2, 3\).*\(3, 2\)"),
    ("expand-size", lambda m: ones(m, 2, 3).expand(4, 3), RuntimeError, r"expand.*4.*\b2\b"),
    ("expand-fewer-dims", lambda m: ones(m, 2, 3).expand(3), RuntimeError, r"expand.*\(1\).*\(2\)"),
    ("broadcast_to", lambda m: m.broadcast_to(ones(m, 2, 3), (3, 3)), RuntimeError, r"broadcast_to.*\(2, 3\).*\(3, 3\)"),
    ("permute-length", lambda m: ones(m, 2, 3).permute(1, 0, 2), RuntimeError, r"permute.*\(1, 0, 2\).*\(2, 3\)"),
    ("permute-repeated", lambda m: ones(m, 2, 3).permute(1, 1), RuntimeError, r"permute.*repeated"),
    ("transpose-dim", lambda m: ones(m, 2, 3).transpose(0, 2), IndexError, r"transpose.*range.*\[-2, 1\].*2"),
    ("squeeze-dim", lambda m: ones(m, 2, 1).squeeze(3), IndexError, r"squeeze.*range.*3"),
    ("unsqueeze-dim", lambda m: ones(m, 2, 3).unsqueeze(4), IndexError, r"unsqueeze.*range.*4"),
    ("flatten-order", lambda m: ones(m, 2, 3, 4).flatten(2, 1), RuntimeError, r"flatten.*start_dim.*end_dim"),
    ("repeat-too-few", lambda m: ones(m, 2, 3).repeat(2), RuntimeError, r"repeat.*\(1\).*\(2\)"),
    ("split-sizes", lambda m: m.split(ones(m, 5), [2, 2]), RuntimeError, r"split.*5.*\[2, 2\]"),
    ("narrow-range", lambda m: m.narrow(ones(m, 4), 0, 3, 2), RuntimeError, r"narrow.*3.*2.*4"),
    ("pad-odd", lambda m: m.pad(ones(m, 2, 3), (1, 2, 3)), RuntimeError, r"pad.*length 3.*\(2, 3\)"),
    ("pad-too-long", lambda m: m.pad(ones(m, 3), (1, 1, 1, 1)), RuntimeError, r"pad.*length 4.*\(3,\)"),
    ("tril-1d", lambda m: m.tril(ones(m, 3)), RuntimeError, r"tril.*\(3,\)"),
    ("roll-lengths", lambda m: m.roll(ones(m, 2, 3), (1, 2), (0,)), RuntimeError, r"roll.*\(1, 2\).*\(0,\)"),
    ("t-3d", lambda m: ones(m, 2, 3, 4).t(), RuntimeError, r"t.*\(2, 3, 4\)"),
    ("mT-1d", lambda m: ones(m, 3).mT, RuntimeError, r"mT.*\(3,\)"),
    # reductions
    ("sum-dim", lambda m: ones(m, 2, 3).sum(2), IndexError, r"sum.*range.*\[-2, 1\].*2"),
    ("sum-negative-dim", lambda m: ones(m, 2, 3).sum(-3), IndexError, r"sum.*range.*-3"),
    ("sum-repeated-dims", lambda m: ones(m, 2, 3).sum((0, -2)), RuntimeError, r"sum.*multiple times"),
    ("mean-dim", lambda m: ones(m, 2, 3).mean((0, 5)), IndexError, r"mean.*range.*5"),
    ("mean-integer", lambda m: m.mean(m.tensor([1, 2])), RuntimeError, r"mean.*int64"),
    ("amax-dim", lambda m: m.amax(ones(m, 2), 1), IndexError, r"amax.*range.*1"),
    ("amax-empty", lambda m: m.amax(ones(m, 0, 2), 0), RuntimeError, r"amax.*\(0, 2\)"),
    ("max-dim", lambda m: m.max(ones(m, 2), 1), IndexError, r"max.*range.*1"),
    ("max-empty", lambda m: m.max(ones(m, 0)), RuntimeError, r"max.*\(0,\)"),
    ("prod-dim", lambda m: m.prod(ones(m, 2), -2), IndexError, r"prod.*range.*-2"),
    ("var-dim", lambda m: m.var(ones(m, 2, 2), 2), IndexError, r"var.*range.*2"),
    ("var-integer", lambda m: m.var(m.tensor([1, 2, 3])), RuntimeError, r"var.*int64"),
    ("logsumexp-dim", lambda m: m.logsumexp(ones(m, 2), 1), IndexError, r"logsumexp.*range.*1"),
    ("cumsum-dim", lambda m: m.cumsum(ones(m, 2), 1), IndexError, r"cumsum.*range.*1"),
    ("argmax-dim", lambda m: m.argmax(ones(m, 2), 1), IndexError, r"argmax.*range.*1"),
    ("norm-dim", lambda m: m.norm(ones(m, 2), dim=3), IndexError, r"norm.*range.*3"),
    ("norm-integer", lambda m: m.norm(m.tensor([3, 4])), RuntimeError, r"norm.*int64"),
    # indexing
    ("getitem-range", lambda m: ones(m, 2, 3)[2], IndexError, r"getitem.*2.*\(2, 3\)"),
    ("getitem-negative-range", lambda m: ones(m, 2, 3)[:, -4], IndexError, r"getitem.*-4.*\(2, 3\)"),
    ("getitem-too-many", lambda m: ones(m, 2)[0, 0], IndexError, r"getitem.*\(2,\)"),
    ("getitem-int-array", lambda m: ones(m, 3)[m.tensor([0, 3])], IndexError, r"getitem.*3.*\(3,\)"),
    ("getitem-float-index", lambda m: ones(m, 3)[m.tensor([0.0])], IndexError, r"getitem.*float32"),
    ("getitem-mask-shape", lambda m: ones(m, 3)[m.tensor([True, False])], IndexError, r"getitem.*\(3,\)"),
    ("gather-range", lambda m: m.gather(ones(m, 2, 3), 1, m.tensor([[0, 3]])), IndexError,
     r"gather.*index 3.*dimension 1.*size 3"),
    ("gather-ndim", lambda m: m.gather(ones(m, 2, 3), 1, m.tensor([0, 1])), RuntimeError, r"gather.*\(2,\).*\(2, 3\)"),
    ("gather-float-index", lambda m: m.gather(ones(m, 2, 3), 1, m.tensor([[0.0]])), RuntimeError, r"gather.*float32"),
    ("scatter_add-range", lambda m: m.scatter_add(ones(m, 3), 0, m.tensor([5]), ones(m, 1)), IndexError,
     r"scatter_add.*index 5.*size 3"),
    ("index_select-range", lambda m: m.index_select(ones(m, 3, 2), 0, m.tensor([1, 3])), IndexError,
     r"index_select.*3.*\(3, 2\)"),
    ("index_select-2d-index", lambda m: m.index_select(ones(m, 3), 0, m.tensor([[1]])), RuntimeError,
     r"index_select.*1-D.*\(1, 1\)"),
    ("index_select-dim", lambda m: m.index_select(ones(m, 3), 1, m.tensor([1])), IndexError, r"index_select.*range.*1"),
    ("masked_fill-mask-dtype", lambda m: m.masked_fill(ones(m, 3), ones(m, 3), 0.0), RuntimeError,
     r"masked_fill.*bool.*float32"),
    ("masked_fill-mask-shape", lambda m: m.masked_fill(ones(m, 3), m.ones(2, dtype=m.bool), 0.0), RuntimeError,
     r"masked_fill.*\(2,\).*\(3,\)"),
    ("take_along_dim-ndim", lambda m: m.take_along_dim(ones(m, 2, 3), m.tensor([0]), 1), RuntimeError,
     r"take_along_dim.*\(2, 3\).*\(1,\)"),
    ("one_hot-range", lambda m: TORCH.one_hot(m.tensor([0, 3]), 3) if m is not cr else cr.one_hot(cr.tensor([0, 3]), 3),
     RuntimeError, r"one_hot.*\[0, 3\).*max 3"),
    # indexing, scatter and search
    ("scatter_reduce-reduce", lambda m: m.scatter_reduce(ones(m, 3), 0, m.tensor([0]), ones(m, 1), "avg"), RuntimeError,
     r"scatter_reduce.*sum, prod, mean, amax or amin.*avg"),
    ("scatter_reduce-dtypes", lambda m: m.scatter_reduce(ones(m, 3), 0, m.tensor([0]), ones(m, 1, dtype=f64(m)), "sum"),
     RuntimeError, r"scatter_reduce.*float64.*float32"),
    ("scatter_reduce-src-smaller", lambda m: m.scatter_reduce(ones(m, 3), 0, m.tensor([0, 1]), ones(m, 1), "sum"),
     RuntimeError, r"scatter_reduce.*\(2,\).*src.*\(1,\)"),
    ("scatter_reduce-range", lambda m: m.scatter_reduce(ones(m, 3), 0, m.tensor([3]), ones(m, 1), "amax"), IndexError,
     r"scatter_reduce.*index 3.*size 3"),
    ("scatter_reduce-float-index", lambda m: m.scatter_reduce(ones(m, 3), 0, m.tensor([0.0]), ones(m, 1), "sum"),
     RuntimeError, r"scatter_reduce.*int64.*float32"),
    ("scatter_reduce-mean-bool", lambda m: m.scatter_reduce(m.tensor([True]), 0, m.tensor([0]), m.tensor([False]), "mean"),
     RuntimeError, r"scatter_reduce.*mean.*bool"),
    ("index_reduce-mean-bool", lambda m: m.index_reduce(m.tensor([True]), 0, m.tensor([0]), m.tensor([False]), "mean"),
     RuntimeError, r"index_reduce.*mean.*bool"),
    ("scatter-reduce-name", lambda m: m.scatter(ones(m, 3), 0, m.tensor([0]), ones(m, 1), reduce="mean"), RuntimeError,
     r"scatter.*add or multiply.*mean"),
    ("index_copy-count", lambda m: m.index_copy(ones(m, 3, 2), 0, m.tensor([0, 1]), ones(m, 3, 2)), IndexError,
     r"index_copy.*\(3, 2\).*\(2, 2\).*2"),
    ("index_copy-range", lambda m: m.index_copy(ones(m, 3), 0, m.tensor([3]), ones(m, 1)), IndexError,
     r"index_copy.*index 3.*size 3"),
    ("index_copy-2d-index", lambda m: m.index_copy(ones(m, 3), 0, m.tensor([[0]]), ones(m, 1)), IndexError,
     r"index_copy.*1-D.*\(1, 1\)"),
    ("index_copy-dtypes", lambda m: m.index_copy(ones(m, 3), 0, m.tensor([0]), ones(m, 1, dtype=f64(m))), RuntimeError,
     r"index_copy.*float64.*float32"),
    ("index_reduce-reduce", lambda m: m.index_reduce(ones(m, 3), 0, m.tensor([0]), ones(m, 1), "sum"), RuntimeError,
     r"index_reduce.*prod, mean, amax or amin.*sum"),
    ("index_reduce-source-shape", lambda m: m.index_reduce(ones(m, 3, 2), 0, m.tensor([0]), ones(m, 1, 3), "amax"),
     IndexError, r"index_reduce.*\(1, 3\).*\(1, 2\)"),
    ("index_fill-range", lambda m: m.index_fill(ones(m, 3), 0, m.tensor([-4]), 1.0), IndexError,
     r"index_fill.*index -4.*size 3"),
    ("index_fill-value-shape", lambda m: m.index_fill(ones(m, 3), 0, m.tensor([0]), ones(m, 2)), RuntimeError,
     r"index_fill.*0-d.*\(2,\)"),
    ("masked_scatter-mask-dtype", lambda m: m.masked_scatter(ones(m, 3), m.tensor([1, 0, 1]), ones(m, 3)), RuntimeError,
     r"masked_scatter.*bool.*int64"),
    ("masked_scatter-source-size", lambda m: m.masked_scatter(ones(m, 3), m.tensor([True, True, False]), ones(m, 1)),
     RuntimeError, r"masked_scatter.*2 True.*\(1,\)"),
    ("masked_scatter-broadcast", lambda m: m.masked_scatter(ones(m, 3), m.tensor([True, False]), ones(m, 3)),
     RuntimeError, r"masked_scatter.*\(2,\).*\(3,\)"),
    ("take-range", lambda m: m.take(ones(m, 2, 3), m.tensor([6])), IndexError, r"take.*index 6.*6 elements.*\(2, 3\)"),
    ("take-int32-index", lambda m: m.take(ones(m, 2, 3), m.tensor([1], dtype=m.int32)), RuntimeError, r"take.*int64.*int32"),
    ("put-count", lambda m: m.put(ones(m, 3), m.tensor([0, 1]), ones(m, 3)), IndexError, r"put.*\(3,\).*\(2,\)"),
    ("put-range", lambda m: m.put(ones(m, 3), m.tensor([-4]), ones(m, 1)), IndexError, r"put.*index -4.*3 elements"),
    ("unique-dim", lambda m: m.unique(ones(m, 2, 3), dim=2), IndexError, r"unique.*range.*2"),
    ("unique-0d-dim", lambda m: m.unique(m.tensor(3.0), dim=0), IndexError, r"unique.*no dimensions"),
    ("unique-zero-size-slices", lambda m: m.unique(ones(m, 2, 0), dim=0), RuntimeError, r"unique.*\(2, 0\).*dim 0"),
    ("unique_consecutive-zero-size", lambda m: m.unique_consecutive(ones(m, 0, 0), dim=1), RuntimeError,
     r"unique_consecutive.*\(0, 0\)"),
    ("bincount-2d", lambda m: m.bincount(m.tensor([[1]])), RuntimeError, r"bincount.*1-D non-negative.*\(1, 1\)"),
    ("bincount-negative", lambda m: m.bincount(m.tensor([1, -1])), RuntimeError, r"bincount.*non-negative.*\(2,\)"),
    ("bincount-float", lambda m: m.bincount(ones(m, 2)), (RuntimeError, NotImplementedError), r"bincount.*integer.*float32"),
    ("bincount-weights", lambda m: m.bincount(m.tensor([1, 2]), ones(m, 3)), RuntimeError,
     r"bincount.*weights.*\(3,\).*\(2,\)"),
    ("bincount-minlength", lambda m: m.bincount(m.tensor([1]), minlength=-1), RuntimeError, r"bincount.*minlength.*-1"),
    ("histc-integer", lambda m: m.histc(m.tensor([1, 2])), (RuntimeError, NotImplementedError), r"histc.*floating.*int64"),
    ("histc-bins", lambda m: m.histc(ones(m, 2), bins=0), RuntimeError, r"histc.*bins.*0"),
    ("histc-range", lambda m: m.histc(ones(m, 2), bins=3, min=2, max=1), RuntimeError, r"histc.*max.*min"),
    ("histc-nan-range", lambda m: m.histc(m.tensor([1.0, float("nan")]), bins=3), RuntimeError, r"histc.*not finite"),
    ("searchsorted-0d", lambda m: m.searchsorted(m.tensor(1.0), ones(m, 1)), RuntimeError,
     r"searchsorted.*at least one dimension.*\(\)"),
    ("searchsorted-rows", lambda m: m.searchsorted(ones(m, 2, 3), ones(m, 3, 1)), RuntimeError,
     r"searchsorted.*\(2, 3\).*\(3, 1\)"),
    ("searchsorted-number-rows", lambda m: m.searchsorted(ones(m, 2, 3), 1.0), RuntimeError,
     r"searchsorted.*number.*1-D.*\(2, 3\)"),
    ("searchsorted-side", lambda m: m.searchsorted(ones(m, 3), ones(m, 2), side="middle"), RuntimeError,
     r"searchsorted.*'left' or 'right'.*middle"),
    ("searchsorted-opposites", lambda m: m.searchsorted(ones(m, 3), ones(m, 2), side="left", right=True), RuntimeError,
     r"searchsorted.*opposites"),
    ("searchsorted-sorter", lambda m: m.searchsorted(ones(m, 3), ones(m, 2), sorter=m.tensor([0, 1])), RuntimeError,
     r"searchsorted.*sorter.*\(2,\).*\(3,\)"),
    ("searchsorted-bool", lambda m: m.searchsorted(m.tensor([False, True]), m.tensor([True])),
     (RuntimeError, NotImplementedError), r"searchsorted.*bool"),
    ("bucketize-2d", lambda m: m.bucketize(ones(m, 2), ones(m, 2, 2)), RuntimeError, r"bucketize.*1-D.*\(2, 2\)"),
    ("where-one-of-two", lambda m: m.where(m.tensor([True]), ones(m, 1)), TypeError, r"where.*both"),
    # dtypes PyTorch refuses
    ("neg-bool", lambda m: -m.tensor([True]), RuntimeError, r"neg.*bool"),
    ("sub-bool", lambda m: m.tensor([True]) - m.tensor([False]), RuntimeError, r"sub.*bool"),
    ("pow-negative-integer", lambda m: m.tensor([2, 3]) ** -1, RuntimeError, r"pow.*negative integer.*int64"),
    ("add-float-alpha-integer", lambda m: m.add(m.tensor([1]), m.tensor([2]), alpha=0.5), RuntimeError,
     r"add.*alpha.*int64"),
    ("relu-bool", lambda m: m.relu(m.tensor([True])), RuntimeError, r"relu.*bool"),
    ("argmax-bool", lambda m: m.argmax(m.tensor([True, False])), RuntimeError, r"argmax.*bool"),
    ("bitwise-float", lambda m: m.tensor([1.0]) & m.tensor([1.0]), (TypeError, RuntimeError), r"bitwise_and.*float32"),
    ("requires-grad-integer", lambda m: m.tensor([1, 2], requires_grad=True), RuntimeError, r"int64"),
    # elementwise functions, more
    ("fmax-broadcast", lambda m: m.fmax(ones(m, 2), ones(m, 3)), RuntimeError, r"fmax.*\(2,\).*\(3,\)"),
    ("gcd-float", lambda m: m.gcd(ones(m, 2), ones(m, 2)), RuntimeError, r"gcd.*float32.*integer"),
    ("lcm-float", lambda m: m.lcm(m.tensor([2]), ones(m, 1)), RuntimeError, r"lcm.*float32.*integer"),
    ("heaviside-dtypes", lambda m: m.heaviside(ones(m, 2), ones(m, 2, dtype=f64(m))), RuntimeError,
     r"heaviside.*different dtypes.*float32.*float64"),
    ("frexp-integer", lambda m: m.frexp(m.tensor([3])), RuntimeError, r"frexp.*floating.*int64"),
    ("nextafter-integer", lambda m: m.nextafter(m.tensor([3]), m.tensor([4])), RuntimeError, r"nextafter.*int64"),
    ("igamma-integer", lambda m: m.igamma(m.tensor([3]), m.tensor([4])), RuntimeError, r"igamma.*int64"),
    ("positive-bool", lambda m: m.positive(m.tensor([True])), RuntimeError, r"positive.*bool"),
    ("mvlgamma-bool", lambda m: m.mvlgamma(m.tensor([True]), 1), RuntimeError, r"mvlgamma.*bool"),
    ("mvlgamma-p", lambda m: m.mvlgamma(ones(m, 2), 0), RuntimeError, r"mvlgamma.*p.*1"),
    ("i0-complex", lambda m: m.i0(ones(m, 2, dtype=m.complex64)), RuntimeError, r"i0.*complex"),
    # grid sampling and the remaining resampling and pooling
    ("grid_sample-batch", lambda m: m.nn.functional.grid_sample(ones(m, 1, 2, 3, 4), ones(m, 2, 2, 3, 2),
                                                                align_corners=False), RuntimeError,
     r"grid_sampler.*same batch size.*\[1, 2, 3, 4\].*\[2, 2, 3, 2\]"),
    ("grid_sample-dtypes", lambda m: m.nn.functional.grid_sample(ones(m, 1, 2, 3, 4), ones(m, 1, 2, 3, 2, dtype=f64(m)),
                                                                 align_corners=False), RuntimeError,
     r"grid_sampler.*float32.*float64"),
    ("grid_sample-bicubic-3d", lambda m: m.nn.functional.grid_sample(ones(m, 1, 1, 2, 3, 4), ones(m, 1, 1, 2, 3, 3),
                                                                     mode="bicubic", align_corners=False), RuntimeError,
     r"grid_sampler.*bicubic.*4D"),
    ("affine_grid-theta-shape", lambda m: m.nn.functional.affine_grid(ones(m, 1, 3, 3), (1, 1, 2, 2), align_corners=False),
     ValueError, r"Nx2x3.*\(1, 1, 2, 2\).*\(1, 3, 3\)"),
    ("interpolate-antialias-nearest", lambda m: m.nn.functional.interpolate(ones(m, 1, 1, 4, 4), size=2, antialias=True),
     ValueError, r"Anti-alias.*bilinear and bicubic"),
    ("fractional_max_pool2d-too-large", lambda m: m.nn.functional.fractional_max_pool2d(ones(m, 1, 1, 4, 4), 2,
                                                                                       output_size=(4, 2)),
     RuntimeError, r"fractional_max_pool2d.*pool height 2 too large relative to input height 4"),
    ("fractional_max_pool3d-samples", lambda m: m.nn.functional.fractional_max_pool3d(
        ones(m, 1, 1, 4, 4, 4), 2, output_size=2, _random_samples=ones(m, 1, 1, 2)), RuntimeError,
     r"_random_samples.size\(2\) equals to 3; got 2"),
]


@pytest.mark.parametrize("call, error, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in ERRORS])
def test_bad_input_raises_at_the_operation(call, error, pattern):
    with pytest.raises(error, match=re.compile(pattern, re.DOTALL)):
        call(cr)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("call, error", [pytest.param(c, e, id=i) for i, c, e, _ in ERRORS])
def test_pytorch_refuses_the_same_input(call, error):
    with pytest.raises(Exception):  # noqa: B017 (torch's error types vary; that it refuses is the point)
        call(TORCH)


# Refusals of operations on tensors in a graph: h = 2x (a non-leaf, so an in-place op has a node to
# replace) and v = h[0] (a view of it).
REFUSED = [
    ("matmul", lambda h, v: h @ cr.ones(4, 2)),
    ("add-broadcast", lambda h, v: h + cr.ones(4)),
    ("cat-sizes", lambda h, v: cr.cat([h, cr.ones(2, 4)], 0)),
    ("view-size", lambda h, v: h.view(5, -1)),
    ("getitem-range", lambda h, v: h[2]),
    ("gather-range", lambda h, v: cr.gather(h, 1, cr.tensor([[0, 3]]))),
    ("scatter_add-range", lambda h, v: cr.scatter_add(h, 1, cr.tensor([[5]]), cr.ones(1, 1))),
    ("sum-dim", lambda h, v: h.sum(2)),
    ("add_-broadcast", lambda h, v: h.add_(cr.ones(4))),
    ("mul_-of-a-view", lambda h, v: v.mul_(cr.ones(2))),
    ("masked_fill_-mask-dtype", lambda h, v: h.masked_fill_(cr.ones(2, 3), 0.0)),
    ("index_add_-range", lambda h, v: h.index_add_(0, cr.tensor([5]), cr.ones(1, 3))),
    ("scatter_reduce_-range", lambda h, v: h.scatter_reduce_(1, cr.tensor([[3]]), cr.ones(1, 1), "prod")),
    ("index_copy_-count", lambda h, v: h.index_copy_(0, cr.tensor([0]), cr.ones(2, 3))),
    ("index_fill_-range", lambda h, v: h.index_fill_(1, cr.tensor([3]), 1.0)),
    ("masked_scatter_-source-size", lambda h, v: h.masked_scatter_(cr.ones(2, 3, dtype=cr.bool), cr.ones(5))),
    ("put_-range", lambda h, v: h.put_(cr.tensor([6]), cr.ones(1))),
    ("setitem-shape", lambda h, v: h.__setitem__(0, cr.ones(4))),
    ("copy_-shape", lambda h, v: h.copy_(cr.ones(3, 3))),
]


def _live_nodes() -> int:
    return Counter(map(type, gc.get_objects()))[Node]


def _state(t) -> tuple:
    return t.grad_fn, t._version, t.detach().cpu().numpy().copy(), t.requires_grad, t.is_leaf


def _graph_ops(t) -> list[str]:
    """The ops of the nodes reachable from ``t`` (through the public ``next_functions``)."""
    seen, stack, ops = set(), [t.grad_fn], []
    while stack:
        node = stack.pop()
        if isinstance(node, Node) and id(node) not in seen:
            seen.add(id(node))
            ops.append(node.op)
            stack.extend(parent for parent, _ in node.next_functions)
    return sorted(ops)


def _what_a_refusal_left(refuse) -> list[str]:
    """Run ``refuse(h, v)`` on a small graph and list what it left behind: nodes made, a tensor whose node,
    version or values changed, a later graph with extra nodes, a gradient that is not what it would be
    without the refused call. Empty when the refusal left nothing."""
    cr.manual_seed(0)
    x = cr.randn(2, 3, requires_grad=True)
    h = x * 2
    v = h[0]
    before = [_state(t) for t in (x, h, v)]
    # With the collector off between the two counts, their difference is the nodes the call made that
    # something still holds; holding the traceback holds the frames' locals, so a node the op made
    # before refusing is among them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        live = _live_nodes()
        try:
            refuse(h, v)
        except (RuntimeError, IndexError) as err:
            refusal = err
        else:
            return ["the call was not refused"]
        made = _live_nodes() - live
    finally:
        if collecting:
            gc.enable()
    problems = [f"{made} node(s) made"] if made else []
    for name, t, (node, version, values, rg, leaf) in zip("xhv", (x, h, v), before):
        if t.grad_fn is not node or t._version != version or t.requires_grad != rg or t.is_leaf != leaf:
            problems.append(f"{name}'s node, version or flags changed")
        if not np.array_equal(t.detach().cpu().numpy(), values):
            problems.append(f"{name}'s values changed")
    y = (h * h).sum()  # sum(4 x^2)
    if _graph_ops(y) != ["mul", "mul", "sum"]:
        problems.append(f"a later graph holds {_graph_ops(y)}")
    y.backward()
    if not np.allclose(x.grad.cpu().numpy(), 8 * x.detach().cpu().numpy()):
        problems.append("x.grad is not 8x")
    del refusal
    return problems


@pytest.mark.parametrize("refuse", [pytest.param(f, id=i) for i, f in REFUSED])
def test_a_refused_operation_records_nothing(refuse):
    assert _what_a_refusal_left(refuse) == []


def _records_then_refuses(h, v):
    out = h * 3  # noqa: F841  (held by the frame, as an op's own result is when it checks too late)
    raise RuntimeError("late_op: refused after recording")


def _changes_then_refuses(h, v):
    h.mul_(3)
    raise RuntimeError("late_op_: refused after changing its input")


@pytest.mark.parametrize("refuse", [_records_then_refuses, _changes_then_refuses])
def test_the_check_sees_a_refusal_that_left_something(refuse):
    assert _what_a_refusal_left(refuse)
