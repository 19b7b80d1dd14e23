"""GPT-2 checkpoints from Hugging Face transformers in and out of chainrule's GPT, with transformers' own
GPT2LMHeadModel (tiny random configs built here, no hub access) as the oracle; the GPT-2 BPE tokenizer against
transformers' GPT2Tokenizer; the import-hf / export command line."""

import json
import os

import numpy as np
import pytest

import chainrule as cr
from chainrule.io import CheckpointError
from chainrule.models import GPT, hf_gpt2

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
safetensors_torch = pytest.importorskip("safetensors.torch")

pytestmark = pytest.mark.oracle
V, P = 97, 32


def _hf_model(tied: bool = True, seed: int = 0, **extra):
    """A tiny GPT2LMHeadModel with every parameter random, LayerNorms included, so no mistake hides behind 1 and 0."""
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=P, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                                  eos_token_id=0, tie_word_embeddings=tied, **extra)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            offset = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0
            p.copy_(torch.randn_like(p) * 0.3 + offset)
    return model


def _ids(shape=(3, P), seed=1):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def _logits_gap(folder, hf, ids) -> float:
    want = hf(ids).logits.detach().cpu().numpy()
    got = GPT.from_pretrained(folder)(cr.tensor(ids.cpu().numpy())).detach().cpu().numpy()
    return float(np.abs(got - want).max())


def _rewrite(folder, target, rename=lambda k: k, keep=lambda k: True, extra=None):
    """The folder's weights written again by safetensors.torch with renamed / dropped / added keys."""
    weights = safetensors_torch.load_file(os.path.join(folder, "model.safetensors"))
    weights = {rename(k): v for k, v in weights.items() if keep(k)}
    weights.update(extra or {})
    os.makedirs(target, exist_ok=True)
    safetensors_torch.save_file(weights, os.path.join(target, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json")) as src, open(os.path.join(target, "config.json"), "w") as dst:
        dst.write(src.read())
    return target


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_transformers(tmp_path, tied):
    hf = _hf_model(tied)
    hf.save_pretrained(tmp_path)
    assert ("lm_head.weight" in safetensors_torch.load_file(tmp_path / "model.safetensors")) is not tied
    model = GPT.from_pretrained(tmp_path)
    assert (model.head.weight is model.tok_emb.weight) is tied
    assert _logits_gap(tmp_path, hf, _ids()) < 1e-5


def test_hub_style_keys_without_prefix_and_with_mask_buffers(tmp_path):
    hf = _hf_model(tied=True)
    hf.save_pretrained(tmp_path / "orig")
    masks = {f"h.{i}.attn.{name}": torch.ones(1, 1, P, P) for i in range(2) for name in ("bias", "masked_bias")}
    target = _rewrite(tmp_path / "orig", tmp_path / "hub", rename=lambda k: k.removeprefix("transformer."), extra=masks)
    assert _logits_gap(target, hf, _ids()) < 1e-5


def test_tied_pair_saved_as_lm_head_only(tmp_path):
    # safetensors.torch.save_model keeps lm_head.weight and drops transformer.wte.weight
    hf = _hf_model(tied=True)
    hf.save_pretrained(tmp_path / "orig")
    weights = safetensors_torch.load_file(tmp_path / "orig" / "model.safetensors")
    target = _rewrite(tmp_path / "orig", tmp_path / "head", keep=lambda k: k != "transformer.wte.weight",
                      extra={"lm_head.weight": weights["transformer.wte.weight"]})
    assert _logits_gap(target, hf, _ids()) < 1e-5


def test_sharded_checkpoint(tmp_path):
    hf = _hf_model(tied=False)
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
    assert _logits_gap(tmp_path, hf, _ids()) < 1e-5


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights_are_upcast_exactly(tmp_path, dtype):
    hf = _hf_model(tied=True).to(getattr(torch, dtype))
    hf.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert model.tok_emb.weight.dtype == cr.float32
    want = hf.transformer.h[1].mlp.c_proj.weight.detach().float().cpu().numpy().T
    np.testing.assert_array_equal(model.blocks[1].fc2.weight.detach().cpu().numpy(), want)
    assert _logits_gap(tmp_path, hf.float(), _ids()) < 1e-5


def test_a_missed_square_c_proj_transpose_is_caught(tmp_path, monkeypatch):
    hf = _hf_model(tied=True)
    hf.save_pretrained(tmp_path)
    assert _logits_gap(tmp_path, hf, _ids()) < 1e-5
    broken = [(h, c, t and "attn.c_proj" not in h) for h, c, t in hf_gpt2._NAMES]
    monkeypatch.setattr(hf_gpt2, "_NAMES", broken)
    assert _logits_gap(tmp_path, hf, _ids()) > 1e-2  # loads without a shape error; only the logits tell


def test_greedy_continuation_matches_transformers(tmp_path):
    hf = _hf_model(tied=True)
    hf.save_pretrained(tmp_path)
    prompt = _ids((2, 5), seed=3)
    want = hf.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0).cpu().numpy()
    got = GPT.from_pretrained(tmp_path).generate(cr.tensor(prompt.cpu().numpy()), 12, top_k=1).cpu().numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tied", [True, False])
def test_save_pretrained_loads_in_transformers(tmp_path, tied):
    hf = _hf_model(tied)
    hf.save_pretrained(tmp_path / "orig")
    GPT.from_pretrained(tmp_path / "orig").save_pretrained(tmp_path / "back")
    header = json.loads(open(tmp_path / "back" / "model.safetensors", "rb").read()[8:].split(b"}}", 1)[0] + b"}}")
    assert header["__metadata__"] == {"format": "pt"}
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "back").eval()
    ids = _ids()
    np.testing.assert_array_equal(back(ids).logits.detach().cpu().numpy(), hf(ids).logits.detach().cpu().numpy())


def test_save_pretrained_of_a_chainrule_trained_gpt(tmp_path):
    cr.manual_seed(0)
    model = GPT(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16, tie_weights=False, n_inner=24,
                activation="gelu").eval()
    model.save_pretrained(tmp_path)
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = _ids((2, 16))
    want = model(cr.tensor(ids.cpu().numpy())).detach().cpu().numpy()
    np.testing.assert_allclose(back(ids).logits.detach().cpu().numpy(), want, rtol=1e-5, atol=1e-5)


def test_fine_tuning_step_equals_pytorch(tmp_path):
    hf = _hf_model(tied=True, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0).train()  # dropout would differ
    hf.save_pretrained(tmp_path)
    model = GPT.from_pretrained(tmp_path).train()
    ids, targets = _ids((2, 16), seed=5), _ids((2, 16), seed=6)
    opt_t = torch.optim.SGD(hf.parameters(), lr=0.1, momentum=0.9)
    loss_t = torch.nn.functional.cross_entropy(hf(ids).logits.reshape(-1, V), targets.reshape(-1))
    loss_t.backward()
    opt_c = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    logits = model(cr.tensor(ids.cpu().numpy()))
    loss_c = cr.nn.functional.cross_entropy(logits.reshape(-1, V), cr.tensor(targets.cpu().numpy()).reshape(-1))
    loss_c.backward()
    assert abs(loss_c.item() - loss_t.item()) < 1e-5
    grads = hf_gpt2.to_chainrule_state({k: p.grad.cpu().numpy() for k, p in hf.named_parameters()}, 2, True, "grads")
    params = dict(model.named_parameters())
    for name, grad in grads.items():
        if name != "head.weight":  # tied: the same parameter as tok_emb.weight
            np.testing.assert_allclose(params[name].grad.cpu().numpy(), grad, rtol=1e-4, atol=1e-5, err_msg=name)
    opt_t.step()
    opt_c.step()
    hf.eval().save_pretrained(tmp_path / "stepped")
    for name, value in GPT.from_pretrained(tmp_path / "stepped").state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name].detach().cpu().numpy(), value.cpu().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_refusals(tmp_path):
    _hf_model().save_pretrained(tmp_path / "ok")
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    for change, words in [({"model_type": "llama"}, "model_type"), ({"scale_attn_by_inverse_layer_idx": True}, "scale"),
                          ({"add_cross_attention": True}, "cross"), ({"activation_function": "swish"}, "activation")]:
        (tmp_path / "bad").mkdir(exist_ok=True)
        (tmp_path / "bad" / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(CheckpointError, match=words):
            GPT.from_pretrained(tmp_path / "bad")
    untied = _rewrite(tmp_path / "ok", tmp_path / "untied")
    (tmp_path / "untied" / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(CheckpointError, match="lm_head"):
        GPT.from_pretrained(untied)


def test_pickle_checkpoints_are_refused_with_a_recipe(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="pickle.*safetensors.torch"):
        GPT.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        GPT.from_pretrained(tmp_path / "pytorch_model.bin")


# ----- the tokenizer ---------------------------------------------------------------------------------------

_TEXTS = [
    "Hello  world!!  It's   3.14 ½ Ⅻ ²  naïve café 日本語 \n\n\tTabs\r\n end  ", "<|endoftext|>Hi<|endoftext|> you'll",
    "x's 've 'RE 'S", "   ", "a\x1cb\u00a0c\u2003d", "emoji 😀👍🏽 ok", "123456 abc123def", "__init__ -- ... !!'s", "",
]


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    """vocab.json and merges.txt trained here with the tokenizers library on tiny Shakespeare."""
    tokenizers = pytest.importorskip("tokenizers")
    folder = tmp_path_factory.mktemp("bpe")
    trainer = tokenizers.ByteLevelBPETokenizer()
    text = cr.data.data_path("tinyshakespeare.txt").read_text()
    trainer.train_from_iterator([text[:100_000]], vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"])
    trainer.save_model(str(folder))
    trainer.save(str(folder / "tokenizer.json"))
    return folder


def test_tokenizer_matches_transformers(bpe_folder):
    from chainrule.data.bpe import GPT2Tokenizer

    theirs = transformers.GPT2Tokenizer.from_pretrained(bpe_folder)
    mine = GPT2Tokenizer.from_pretrained(bpe_folder)
    text = cr.data.data_path("tinyshakespeare.txt").read_text()[-20_000:]
    for sample in [text, *_TEXTS]:
        ids = mine.encode(sample)
        assert ids == theirs.encode(sample), repr(sample[:40])
        assert mine.decode(ids) == sample
    assert len(mine) == len(theirs)


def test_tokenizer_from_tokenizer_json_alone(bpe_folder, tmp_path):
    # transformers 5 saves a tokenizer as tokenizer.json (+ tokenizer_config.json) only
    from chainrule.data.bpe import GPT2Tokenizer

    (tmp_path / "tokenizer.json").write_bytes((bpe_folder / "tokenizer.json").read_bytes())
    theirs, mine = transformers.GPT2Tokenizer.from_pretrained(bpe_folder), GPT2Tokenizer.from_pretrained(tmp_path)
    for sample in _TEXTS:
        assert mine.encode(sample) == theirs.encode(sample), repr(sample[:40])
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        GPT2Tokenizer.from_pretrained(tmp_path / "nothing")


# ----- the command line ------------------------------------------------------------------------------------

def test_import_sample_evaluate_finetune_export(tmp_path, bpe_folder, capsys):
    from chainrule.cli import main

    source = tmp_path / "gpt2"
    cfg = transformers.GPT2Config(vocab_size=400, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                                  eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(source)
    for name in ("vocab.json", "merges.txt"):
        (source / name).write_bytes((bpe_folder / name).read_bytes())
    run = tmp_path / "run"
    assert main(["import-hf", str(source), "--out", str(run)]) == 0
    assert main(["sample", str(run), "--prompt", "ROMEO:", "--tokens", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("ROMEO:")
    text = tmp_path / "speech.txt"
    text.write_text(cr.data.data_path("tinyshakespeare.txt").read_text()[:6000])
    assert main(["train", "gpt", "--out", str(run), "--resume", "--steps", "30", "--eval-interval", "10",
                 "--lr", "3e-3", "--seq-len", "16", "--text-file", str(text), "--quiet"]) == 0
    trained = json.loads(capsys.readouterr().out.split("run folder:")[0])
    val_losses = [epoch["val_loss"] for epoch in json.loads((run / "history.json").read_text())["epochs"]]
    assert val_losses[-1] < val_losses[0]
    assert main(["evaluate", str(run)]) == 0  # on the same text file, as the run's config says
    assert json.loads(capsys.readouterr().out)["val_loss"] == trained["val_loss"]
    assert main(["export", str(run), "--format", "hf", "--out", str(tmp_path / "out")]) == 0
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    _, model, _ = cr.recipes.load_run(run)
    ids = torch.randint(0, 400, (1, 32))
    np.testing.assert_allclose(back(ids).logits.detach().numpy(), model.eval()(cr.tensor(ids.numpy())).detach().cpu().numpy(),
                               rtol=1e-5, atol=1e-5)
    assert main(["import-hf", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")]) == 2
    (source / "vocab.json").unlink()
    assert main(["import-hf", str(source), "--out", str(tmp_path / "r3")]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "r3")]) == 2
    assert "no tokenizer" in capsys.readouterr().err
