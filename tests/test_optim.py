"""The optimiser the engine builds: PyTorch's fused step where it is the faster one."""

import torch

from engine.backbones import build_model
from engine.config import RunConfig, apply_overrides
from engine.optim import build_optimizer


def test_the_fused_step_is_used_on_the_cpu_only_for_contiguous_parameters():
    """The CPU's fused kernel copies every non-contiguous tensor: with channels_last weights (bf16 training
    on the CPU) the per-tensor step was the faster one, so the engine keeps it there."""
    torch.manual_seed(0)
    model, _ = build_model("resnet18", 3, "none")
    cfg = RunConfig()
    assert build_optimizer(model, cfg).defaults.get("fused") is True
    model.to(memory_format=torch.channels_last)
    assert not build_optimizer(model, cfg).defaults.get("fused")
    assert not build_optimizer(model.to(memory_format=torch.contiguous_format),
                               apply_overrides(cfg, ["optim.fused=false"])).defaults.get("fused"), "the switch off"
    # both give the same update (up to rounding): the choice is speed only
    steps = []
    for fused in (True, False):
        torch.manual_seed(1)
        m, _ = build_model("resnet18", 3, "none")
        opt = build_optimizer(m, apply_overrides(cfg, [f"optim.fused={str(fused).lower()}"]))
        for p in m.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
        steps.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.allclose(steps[0], steps[1], atol=1e-6)
