"""Qwen-Image: Qwen2.5-VL text encoder, 60 dual-stream blocks streamed, true CFG (two transformer calls a step)."""
from __future__ import annotations

from typing import Any

from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline,
                       QwenImageTransformer2DModel)
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.llm_encoders import qwen25_vl
from families.synthetic import ModuleBuilder
from families.tokenizers import qwen_tokenizer
from families.units import block_lists
from harness.errors import HarnessError

_FULL = dict(patch_size=2, in_channels=64, out_channels=16, attention_head_dim=128, guidance_embeds=False,
             axes_dims_rope=(16, 56, 56))
TRANSFORMER = {
    # diffusers' pipeline test
    "tiny": dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
                 num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4)),
    # the released layout with 6 heads and 6 blocks; joint = the small encoder's 128. One step (two calls) at 256x256
    # (256 image tokens, 178 prompt and 129 negative tokens), fp32 on 2 cores: 0.41 s on an idle Xeon, about 0.55 s
    # on the 2-core EPYC dev box (0.98 s of single-thread CPU time).
    "small": dict(_FULL, num_layers=6, num_attention_heads=6, joint_attention_dim=128),
    "full": dict(_FULL, num_layers=60, num_attention_heads=24, joint_attention_dim=3584),
}
_VAE = dict(z_dim=16, dim_mult=[1, 2, 4, 4], temperal_downsample=[False, True, True])
VAE = {
    "tiny": dict(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1, temperal_downsample=[False, True],
                 latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
    "small": dict(_VAE, base_dim=16, num_res_blocks=1),
    "full": dict(_VAE, base_dim=96, num_res_blocks=2),
}
# Qwen/Qwen-Image scheduler/scheduler_config.json
SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9, shift=1.0,
                 shift_terminal=0.02, time_shift_type="exponential", use_dynamic_shifting=True)


@FAMILIES.register("qwen_image")
class QwenImage(DiffusersFamily):
    """Qwen-Image (QwenImageTransformer2DModel, 20.4 B parameters at full scale)."""

    name = "qwen_image"
    variants = ("base",)
    size_multiple = 16
    pipeline_class = QwenImagePipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("transformer", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return {"tiny": RunDefaults(2, 32, 32), "small": RunDefaults(3, 256, 256),
                "full": RunDefaults(50, 1024, 1024)}[scale]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        return dict(
            text_encoder=qwen25_vl(build, scale), tokenizer=qwen_tokenizer(),
            transformer=build(lambda: QwenImageTransformer2DModel(**TRANSFORMER[scale])),
            vae=build(lambda: AutoencoderKLQwenImage(**VAE[scale])),
            scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER))

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "transformer_blocks")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        if args.steps < 2:  # shift_terminal rescales by 1 - the last sigma, which is 0 for a single step
            raise HarnessError(f"run.steps={args.steps} is not valid for {self.name}: its scheduler needs 2 or more "
                               "steps (one step gives NaN)")
        # true CFG needs both a negative prompt and true_cfg_scale > 1: two transformer calls a step
        return dict(prompt=args.prompt, negative_prompt=" ", true_cfg_scale=4.0, num_inference_steps=args.steps,
                    height=args.height, width=args.width, output_type="pt")
