"""no_grad, enable_grad, set_grad_enabled and inference_mode: as context managers and decorators."""

import pytest

import chainrule as cr

x = cr.ones(2, requires_grad=True)


def records() -> bool:
    return (x * 2).requires_grad


def test_no_grad_and_enable_grad_as_context_managers():
    assert cr.is_grad_enabled() and records()
    with cr.no_grad():
        assert not cr.is_grad_enabled() and not records()
        with cr.enable_grad():
            assert cr.is_grad_enabled() and records()
        assert not records()
    assert cr.is_grad_enabled() and records()


def test_modes_as_decorators_with_and_without_parentheses():
    @cr.no_grad()
    def a():
        return records()

    @cr.no_grad
    def b():
        return records()

    @cr.inference_mode()
    def c():
        return records()

    @cr.inference_mode
    def d():
        return records()

    @cr.enable_grad
    def e():
        return records()

    assert (a(), b(), c(), d()) == (False, False, False, False)
    with cr.no_grad():
        assert e() is True
    assert cr.is_grad_enabled()
    assert b.__name__ == "b"
    with pytest.raises(TypeError, match="takes no arguments"):
        cr.no_grad(3)


def test_set_grad_enabled_as_call_context_and_decorator():
    cr.set_grad_enabled(False)
    try:
        assert not records()
    finally:
        cr.set_grad_enabled(True)
    assert records()
    with cr.set_grad_enabled(False):
        assert not records()
    assert records()
    with cr.no_grad():
        with cr.set_grad_enabled(True):
            assert records()
        assert not records()

    @cr.set_grad_enabled(False)
    def f():
        return records()

    assert cr.is_grad_enabled()  # decorating does not change the mode
    assert f() is False and f() is False and cr.is_grad_enabled()


def test_inference_mode_false_keeps_the_current_mode():
    with cr.inference_mode():
        assert not records()
    with cr.inference_mode(False):
        assert records()
    with cr.no_grad(), cr.inference_mode(False):
        assert not records()


def test_modes_are_restored_after_exceptions_and_reentry():
    with pytest.raises(ValueError):
        with cr.no_grad():
            raise ValueError
    assert cr.is_grad_enabled()
    mode = cr.no_grad()
    with mode:
        with mode:
            assert not records()
        assert not records()
    assert records()


def test_decorated_generators_run_each_step_in_the_mode():
    @cr.no_grad
    def steps():
        yield records()
        yield records()

    gen = steps()
    assert next(gen) is False
    assert cr.is_grad_enabled()  # the caller between steps is unaffected
    assert next(gen) is False
    with pytest.raises(StopIteration):
        next(gen)


def test_no_grad_results_are_leaves_outside_the_graph():
    with cr.no_grad():
        y = x * 2
    assert y.is_leaf and y.grad_fn is None and not y.requires_grad


def test_a_set_grad_enabled_object_can_be_entered_again():
    off = cr.set_grad_enabled(False)
    with off:
        assert not records()
    assert records()
    with off:
        with off:
            assert not records()
        assert not records()
    assert records()
