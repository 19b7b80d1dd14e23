"""RNN, LSTM, GRU, their cells and nn.utils.rnn against PyTorch: forward, every gradient (inputs, initial
states, parameters) and state dicts, for every flag combination; packed sequences with unsorted lengths."""

import itertools

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck
from chainrule.nn.utils import rnn as crnn

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn

I, H, T, B = 5, 6, 4, 3
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


def build(kind, dtype="float64", **kw):
    """The same layer in both frameworks: PyTorch's weights copied into chainrule's."""
    torch.manual_seed(0)
    if kind.startswith("RNN"):
        kw["nonlinearity"] = "relu" if kind == "RNN_relu" else "tanh"
        kind = "RNN"
    theirs = getattr(torch.nn, kind)(I, H, **kw).to(getattr(torch, dtype))
    ours = getattr(cr.nn, kind)(I, H, **kw).to(dtype)
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    return theirs, ours


def pair(shape, dtype, seed):
    a = np.random.default_rng(seed).standard_normal(shape)
    return torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True), cr.tensor(a, dtype=dtype, requires_grad=True)


def states(out):
    """The output and hidden states of a layer call as a flat list."""
    o, h = out
    return [o, *(h if isinstance(h, tuple) else (h,))]


def loss_of(tensors, seed=1):
    """A random weighting of every result, the same in both frameworks (so each gets a distinct gradient)."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(tuple(t.shape)) for t in tensors]
    return weights


def check_run(theirs, ours, t_args, c_args, dtype, extra=()):
    t_out, c_out = states(theirs(*t_args)), states(ours(*c_args))
    weights = loss_of(t_out)
    sum(((t * torch.tensor(w, dtype=t.dtype)).sum() for t, w in zip(t_out, weights))).backward()
    sum(((c * cr.tensor(w, dtype=dtype)).sum() for c, w in zip(c_out, weights))).backward()
    tol = TOL[dtype]
    for k, (t, c) in enumerate(zip(t_out, c_out)):
        assert tuple(c.shape) == tuple(t.shape), k
        np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), err_msg=f"result {k}", **tol)
    for k, (t, c) in enumerate(zip(t_args, c_args)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            np.testing.assert_allclose(c.grad.cpu().numpy(), t.grad.cpu().numpy(), err_msg=f"input {k} grad", **tol)
    t_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(t_params)
    for name, p in ours.named_parameters():
        assert p.grad.dtype == getattr(cr, dtype)
        np.testing.assert_allclose(p.grad.cpu().numpy(), t_params[name].grad.cpu().numpy(), err_msg=f"{name} grad", **tol)


def initial(kind, dirs_layers, batch, dtype, seed=7, proj=0):
    hs = (dirs_layers, batch, proj or H) if batch else (dirs_layers, proj or H)
    th, ch = pair(hs, dtype, seed)
    if kind != "LSTM":
        return th, ch
    cs = (dirs_layers, batch, H) if batch else (dirs_layers, H)
    tc, cc = pair(cs, dtype, seed + 1)
    return (th, tc), (ch, cc)


KINDS = ["RNN_tanh", "RNN_relu", "LSTM", "GRU"]
FLAGS = list(itertools.product([1, 2], [False, True], [False, True], [True, False], [False, True]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,given", FLAGS)
def test_layer_matches_torch(kind, num_layers, bidirectional, batch_first, bias, given):
    theirs, ours = build(kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                         bias=bias)
    tx, cx = pair((B, T, I) if batch_first else (T, B, I), "float64", 0)
    t_args, c_args = [tx], [cx]
    if given:
        th, ch = initial(kind.split("_")[0], num_layers * (1 + bidirectional), B, "float64")
        t_args.append(th)
        c_args.append(ch)
    check_run(theirs, ours, t_args, c_args, "float64")


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,given",
                         list(itertools.product([1, 2], [False, True], [False, True], [False, True])))
def test_lstm_proj_size_matches_torch(num_layers, bidirectional, batch_first, given):
    theirs, ours = build("LSTM", num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                         proj_size=4)
    assert tuple(ours.weight_hr_l0.shape) == (4, H) and tuple(ours.weight_hh_l0.shape) == (4 * H, 4)
    tx, cx = pair((B, T, I) if batch_first else (T, B, I), "float64", 0)
    t_args, c_args = [tx], [cx]
    if given:
        th, ch = initial("LSTM", num_layers * (1 + bidirectional), B, "float64", proj=4)
        t_args.append(th)
        c_args.append(ch)
    check_run(theirs, ours, t_args, c_args, "float64")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_zero_in_train_and_dropout_in_eval(kind):
    for dropout, train in ((0.0, True), (0.4, False)):
        theirs, ours = build(kind, num_layers=2, dropout=dropout, bidirectional=True)
        theirs.train(train)
        ours.train(train)
        tx, cx = pair((T, B, I), "float64", 0)
        check_run(theirs, ours, [tx], [cx], "float64")


def test_dropout_in_train_drops_between_layers_only():
    _, ours = build("GRU", num_layers=2, dropout=0.5)
    x = cr.randn(T, B, I, dtype="float64")
    a, _ = ours(x)
    b, _ = ours(x)
    assert not np.allclose(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    ours.eval()
    np.testing.assert_array_equal(ours(x)[0].detach().cpu().numpy(), ours(x)[0].detach().cpu().numpy())


@pytest.mark.parametrize("kind,proj", [(k, 0) for k in KINDS] + [("LSTM", 3)])
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_float32_matches_torch(kind, proj):
    theirs, ours = build(kind, "float32", num_layers=2, bidirectional=True, **({"proj_size": proj} if proj else {}))
    tx, cx = pair((T, B, I), "float32", 0)
    th, ch = initial(kind.split("_")[0], 4, B, "float32", proj=proj)
    check_run(theirs, ours, [tx, th], [cx, ch], "float32")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("given", [False, True])
def test_unbatched_input(kind, given):
    theirs, ours = build(kind, num_layers=2, bidirectional=True)
    tx, cx = pair((T, I), "float64", 0)
    t_args, c_args = [tx], [cx]
    if given:
        th, ch = initial(kind.split("_")[0], 4, None, "float64")
        t_args.append(th)
        c_args.append(ch)
    check_run(theirs, ours, t_args, c_args, "float64")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("given", [False, True])
def test_packed_unsorted_lengths(kind, bidirectional, given):
    theirs, ours = build(kind, num_layers=2, bidirectional=bidirectional, batch_first=True)
    lengths = [2, 5, 1, 4]
    tx, cx = pair((4, 5, I), "float64", 0)
    t_in = trnn.pack_padded_sequence(tx, lengths, batch_first=True, enforce_sorted=False)
    c_in = crnn.pack_padded_sequence(cx, cr.tensor(lengths), batch_first=True, enforce_sorted=False)
    for t, c in zip(t_in[1:], c_in[1:]):
        np.testing.assert_array_equal(c.cpu().numpy(), t.cpu().numpy())
    t_args, c_args = [t_in], [c_in]
    if given:
        th, ch = initial(kind.split("_")[0], 2 * (1 + bidirectional), 4, "float64")
        t_args.append(th)
        c_args.append(ch)
    t_out, c_out = theirs(*t_args), ours(*c_args)
    assert isinstance(c_out[0], crnn.PackedSequence)
    np.testing.assert_array_equal(c_out[0].batch_sizes.cpu().numpy(), t_out[0].batch_sizes.cpu().numpy())
    t_pad, t_len = trnn.pad_packed_sequence(t_out[0], batch_first=True, total_length=6)
    c_pad, c_len = crnn.pad_packed_sequence(c_out[0], batch_first=True, total_length=6)
    np.testing.assert_array_equal(c_len.cpu().numpy(), t_len.cpu().numpy())
    t_res = [t_pad, *(t_out[1] if isinstance(t_out[1], tuple) else (t_out[1],))]
    c_res = [c_pad, *(c_out[1] if isinstance(c_out[1], tuple) else (c_out[1],))]
    weights = loss_of(t_res)
    sum(((t * torch.tensor(w)).sum() for t, w in zip(t_res, weights))).backward()
    sum(((c * cr.tensor(w)).sum() for c, w in zip(c_res, weights))).backward()
    for k, (t, c) in enumerate(zip(t_res, c_res)):
        np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), err_msg=f"result {k}", **TOL["float64"])
    leaves = [(tx, cx)] + ([] if not given else list(zip(*[(a if isinstance(a, tuple) else (a,)) for a in
                                                            (t_args[1], c_args[1])])))
    for t, c in leaves:
        np.testing.assert_allclose(c.grad.cpu().numpy(), t.grad.cpu().numpy(), **TOL["float64"])
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.cpu().numpy(), t_params[name].grad.cpu().numpy(), err_msg=name, **TOL["float64"])


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched,given,bias", list(itertools.product([True, False], repeat=3)))
def test_cells_match_torch(kind, batched, given, bias):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(I, H, bias=bias).double()
    ours = getattr(cr.nn, kind)(I, H, bias=bias).double()
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    tx, cx = pair((B, I) if batched else (I,), "float64", 0)
    t_args, c_args = [tx], [cx]
    if given:
        shape = (B, H) if batched else (H,)
        if kind == "LSTMCell":
            (th, ch), (tc, cc) = pair(shape, "float64", 3), pair(shape, "float64", 4)
            t_args.append((th, tc))
            c_args.append((ch, cc))
        else:
            th, ch = pair(shape, "float64", 3)
            t_args.append(th)
            c_args.append(ch)
    t_out, c_out = theirs(*t_args), ours(*c_args)
    t_res = list(t_out) if isinstance(t_out, tuple) else [t_out]
    c_res = list(c_out) if isinstance(c_out, tuple) else [c_out]
    weights = loss_of(t_res)
    sum(((t * torch.tensor(w)).sum() for t, w in zip(t_res, weights))).backward()
    sum(((c * cr.tensor(w)).sum() for c, w in zip(c_res, weights))).backward()
    for t, c in zip(t_res, c_res):
        np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), **TOL["float64"])
    np.testing.assert_allclose(cx.grad.cpu().numpy(), tx.grad.cpu().numpy(), **TOL["float64"])
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.cpu().numpy(), t_params[name].grad.cpu().numpy(), err_msg=name, **TOL["float64"])


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_crosses_both_ways_and_init(kind):
    kw = {"num_layers": 2, "bidirectional": True}
    theirs, ours = build(kind, **kw)
    t_state = theirs.state_dict()
    c_state = ours.state_dict()
    assert list(c_state) == list(t_state)
    for k in t_state:
        assert tuple(c_state[k].shape) == tuple(t_state[k].shape)
    fresh = build(kind, **kw)[1]
    bound = 1 / np.sqrt(H)
    for p in fresh.parameters():
        assert np.all(np.abs(p.detach().cpu().numpy()) <= bound)
    other = type(theirs)(I, H, **kw, **({"nonlinearity": theirs.nonlinearity} if kind.startswith("RNN") else {}))
    other.double().load_state_dict({k: torch.tensor(v.cpu().numpy()) for k, v in fresh.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((T, B, I))
    np.testing.assert_allclose(fresh(cr.tensor(x))[0].detach().cpu().numpy(), other(torch.tensor(x))[0].detach().cpu().numpy(),
                               **TOL["float64"])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gradcheck_tiny_lstm_and_gru(kind):
    rng = np.random.default_rng(0)
    layer = getattr(cr.nn, kind)(2, 3, num_layers=2, bidirectional=True).double()
    x = cr.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h = cr.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    params = list(layer.parameters())

    def fn(x, h, *_):
        hx = (h, h * 0.5) if kind == "LSTM" else h
        out, _ = layer(x, hx)
        return out

    assert gradcheck(fn, [x, h, *params[:4]], atol=1e-6, rtol=1e-5)
    # the rule (tensor ops) gives the second derivatives
    assert gradgradcheck(lambda x: layer(x)[0], [x], atol=1e-5, rtol=1e-4)


def test_create_graph_rule_matches_fast_entry():
    _, ours = build("LSTM", num_layers=2, proj_size=3, bidirectional=True)
    x = cr.randn(T, B, I, dtype="float64", requires_grad=True)
    grads = []
    for create_graph in (False, True):
        out, (h, c) = ours(x)
        grads.append(cr.autograd.grad((out * out).sum() + c.sum(), [x, *ours.parameters()],
                                      create_graph=create_graph))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b.detach().cpu().numpy(), a.cpu().numpy(), rtol=1e-12, atol=1e-13)


def test_errors_speak():
    lstm = cr.nn.LSTM(I, H, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 5, got 4"):
        lstm(cr.randn(T, B, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(2, 3, 6\), got \[1, 3, 6\]"):
        lstm(cr.randn(T, B, I), (cr.zeros(1, B, H), cr.zeros(2, B, H)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size"):
        lstm(cr.randn(T, B, I), (cr.zeros(2, B, H), cr.zeros(2, B, 5)))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        cr.nn.GRU(I, H)(cr.randn(T, B, I), cr.zeros(1, 2, H))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        lstm(cr.randn(1, T, B, I))
    with pytest.raises(RuntimeError, match="hx should also be 2-D"):
        cr.nn.GRU(I, H)(cr.randn(T, I), cr.zeros(1, 1, H))
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        cr.nn.GRU(I, H, proj_size=2)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        cr.nn.LSTM(I, H, proj_size=H)
    with pytest.raises(RuntimeError, match="inconsistent input_size"):
        cr.nn.GRUCell(I, H)(cr.randn(B, 4))
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        crnn.pack_padded_sequence(cr.randn(T, B, I), [1, 3, 2])
    with pytest.raises(ValueError, match="total_length"):
        crnn.pad_packed_sequence(crnn.pack_sequence([cr.randn(3, 2)]), total_length=2)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        cr.nn.LSTM(I, H, dropout=0.5)


@pytest.mark.parametrize("batch_first,padding_side,value", [(False, "right", 0.0), (True, "left", -1.5),
                                                             (True, "right", 2.0)])
def test_pad_sequence_and_pack_sequence(batch_first, padding_side, value):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 2)) for n in (3, 5, 1)]
    t_seqs = [torch.tensor(s, requires_grad=True) for s in seqs]
    c_seqs = [cr.tensor(s, requires_grad=True) for s in seqs]
    tp = trnn.pad_sequence(t_seqs, batch_first=batch_first, padding_value=value, padding_side=padding_side)
    cp = crnn.pad_sequence(c_seqs, batch_first=batch_first, padding_value=value, padding_side=padding_side)
    np.testing.assert_array_equal(cp.detach().cpu().numpy(), tp.detach().cpu().numpy())
    tk, ck = trnn.pack_sequence(t_seqs, enforce_sorted=False), crnn.pack_sequence(c_seqs, enforce_sorted=False)
    for t, c in zip(tk, ck):
        np.testing.assert_array_equal(c.detach().cpu().numpy(), t.detach().cpu().numpy())
    w = rng.standard_normal(tuple(tk.data.shape))
    (tk.data * torch.tensor(w)).sum().backward()
    (ck.data * cr.tensor(w)).sum().backward()
    for t, c in zip(t_seqs, c_seqs):
        np.testing.assert_array_equal(c.grad.cpu().numpy(), t.grad.cpu().numpy())
    back = crnn.unpack_sequence(ck)
    for s, b in zip(seqs, back):
        np.testing.assert_array_equal(b.detach().cpu().numpy(), s)
    padded, lengths = crnn.pad_packed_sequence(ck, padding_value=value)
    t_padded, t_lengths = trnn.pad_packed_sequence(tk, padding_value=value)
    np.testing.assert_array_equal(padded.detach().cpu().numpy(), t_padded.detach().cpu().numpy())
    np.testing.assert_array_equal(lengths.cpu().numpy(), t_lengths.cpu().numpy())
