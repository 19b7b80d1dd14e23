"""`chainrule train --compile` trains the same run as without it (the recipes go through fit(compile=True))."""

import json
import warnings

import pytest

from chainrule.cli import main

TINY = {
    "mlp": ["--epochs", "1", "--width", "16"],
    "gpt": ["--steps", "6", "--eval-interval", "3", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--block-size", "16"],
}


@pytest.mark.parametrize("kind", sorted(TINY))
def test_train_with_compile_gives_the_eager_run(tmp_path, kind):
    histories = []
    for flag in ([], ["--compile"]):
        out = tmp_path / (kind + "".join(flag))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["train", kind, "--out", str(out), "--quiet", *TINY[kind], *flag]) == 0
        assert not [w for w in caught if "cannot be compiled" in str(w.message)], [str(w.message) for w in caught]
        history = json.loads((out / "history.json").read_text())
        histories.append([step["loss"] for step in history["steps"]])
        if flag:
            assert json.loads((out / "config.json").read_text())["train"]["compile"] is True
    assert histories[0] == histories[1] and len(histories[0]) > 3
