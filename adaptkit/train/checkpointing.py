"""Gradient checkpointing of the LLM (`train.gradient_checkpointing`): its decoder layers keep only
their inputs in the forward and recompute the rest in the backward, trading compute for the
activation memory that LoRA on a large LLM (and token rows or a projector behind it) otherwise holds.

It is transformers' own switch on the LLM component (`gradient_checkpointing_enable` on 4.57,
`activation_checkpointing_enable`, its new name, on 5), with
`use_reentrant=False`: torch's non-reentrant checkpoint sends gradients to the LoRA weights inside a
layer whatever its inputs, so a frozen embedding needs no `enable_input_require_grads`, and the RNG
state is replayed in the recomputation (dropout gives the same mask), so the loss and the gradients
are those of the run without it.
"""

from __future__ import annotations

from torch import nn

from adaptkit.errors import AdaptkitError


KWARGS = {"use_reentrant": False}
"""What `torch.utils.checkpoint.checkpoint` is called with."""


def enable(model: nn.Module, llm_path: str) -> nn.Module:
    """Switch on gradient checkpointing in the LLM at `llm_path` (the freezing DSL's `llm`
    component); returns that module. An LLM class without it is a one-line error."""
    llm = model.get_submodule(llm_path) if llm_path else model
    new, old = getattr(llm, "activation_checkpointing_enable", None), getattr(llm, "gradient_checkpointing_enable", None)
    if (new is None and old is None) or not getattr(llm, "supports_gradient_checkpointing", False):
        raise AdaptkitError(f"train.gradient_checkpointing: the LLM ({llm_path or 'the model'}, {type(llm).__name__}) "
                            "does not support gradient checkpointing; set it to false")
    try:
        new(activation_checkpointing_kwargs=dict(KWARGS)) if new is not None else old(gradient_checkpointing_kwargs=dict(KWARGS))
    except ValueError as err:  # transformers: "... is not compatible with gradient checkpointing"
        raise AdaptkitError(f"train.gradient_checkpointing: {str(err).splitlines()[0]}") from None
    return llm


def is_enabled(module: nn.Module) -> bool:
    """Whether any layer of `module` checkpoints (transformers' `is_gradient_checkpointing`, without
    its deprecation warning on 5)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in module.modules())
