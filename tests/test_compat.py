"""The coverage report of PyTorch's public names (python -m chainrule.compat), against the installed PyTorch."""

import pytest

from chainrule import compat


def test_names_are_split_into_present_missing_and_left_out_with_reasons():
    tensor = compat.coverage("torch.Tensor")
    assert "backward" in tensor.present and "unfold" in tensor.present
    assert "to_sparse" in tensor.left_out["sparse layouts"]
    assert "q_scale" in tensor.left_out["quantization"]
    everything = set(tensor.present) | set(tensor.missing) | {n for names in tensor.left_out.values() for n in names}
    assert len(everything) == len(tensor.present) + len(tensor.missing) + sum(map(len, tensor.left_out.values()))
    assert not set(tensor.present) & set(tensor.missing)
    assert tensor.in_scope == len(tensor.present) + len(tensor.missing)


def test_a_name_chainrule_has_counts_as_present_even_if_a_pattern_would_leave_it_out():
    torch_level = compat.coverage("torch")
    assert "cuda" not in torch_level.missing  # chainrule.cuda exists (a module: not counted either way)
    assert "is_tensor" in torch_level.present and "compile" not in torch_level.missing


@pytest.mark.parametrize("namespace,floor", [("torch.Tensor", 90.0), ("torch.nn.functional", 90.0)])
def test_coverage_stays_at_or_above_the_targets_met(namespace, floor):
    assert compat.coverage(namespace).percent >= floor


def test_command_line_report(capsys):
    assert compat.main([]) == 0
    out = capsys.readouterr().out
    assert "| `torch.Tensor` |" in out and "coverage" in out
    assert compat.main(["--missing", "torch.linalg"]) == 0
    missing = capsys.readouterr().out.split()
    assert missing == compat.coverage("torch.linalg").missing
    assert compat.main(["--left-out", "torch.Tensor"]) == 0
    assert "sparse layouts:" in capsys.readouterr().out
    assert compat.main(["--missing", "torch.nope"]) == 2
    assert "unknown namespace 'torch.nope'" in capsys.readouterr().err
