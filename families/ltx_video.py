"""LTX-Video (2B 0.9.0, 13B 0.9.7): T5-XXL, a 3D transformer streamed block by block, a causal video VAE."""
from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import T5_XXL, t5_config, t5_encoder
from families.synthetic import ModuleBuilder
from families.tokenizers import t5_tokenizer
from families.units import block_lists
from harness.errors import HarnessError

_FULL = dict(in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, activation_fn="gelu-approximate",
             qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
             attention_bias=True, attention_out_bias=True)
VARIANTS = ("2b", "13b")
# tiny: diffusers' LTX pipeline test. small: the released blocks with their head width (64 / 128), 512 wide,
# half (2B) or a third (13B) of the layers; one CFG step at the small defaults (17 x 384 x 384: 432 tokens) takes
# about 0.65 s (2B) / 0.75 s (13B) on 2 CPU cores in fp32.
TRANSFORMER = {
    "tiny": dict.fromkeys(VARIANTS, dict(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                         num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                         num_layers=1, caption_channels=32)),
    "small": {
        "2b": dict(_FULL, num_attention_heads=8, attention_head_dim=64, cross_attention_dim=512, num_layers=14,
                   caption_channels=128),
        "13b": dict(_FULL, num_attention_heads=4, attention_head_dim=128, cross_attention_dim=512, num_layers=16,
                    caption_channels=128),
    },
    "full": {
        "2b": dict(_FULL, num_attention_heads=32, attention_head_dim=64, cross_attention_dim=2048, num_layers=28),
        "13b": dict(_FULL, num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096, num_layers=48),
    },
}
T5 = {"tiny": t5_config(d_model=32, layers=5, heads=4, d_ff=37), "small": t5_config(128, layers=2, heads=2, d_ff=512),
      "full": T5_XXL}
# full: the 0.9.0 VAE (AutoencoderKLLTXVideo defaults: 32x spatial, 8x temporal compression, 128 latent channels);
# the 13B checkpoint ships a later VAE, both variants use this one. small: the same compression, narrower.
VAE = {
    "tiny": dict(latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                 layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
                 spatio_temporal_scaling=(True, True, False, False),
                 decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
                 upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, patch_size=1, patch_size_t=1),
    "small": dict(block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32, 32),
                  layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1)),
    "full": dict(),
}
TEXT_TOKENS = {"tiny": 16, "small": 64, "full": 128}
# full: the settings of diffusers' LTX-Video docs examples (2B: 0.9.0 text-to-video, 13B: 0.9.7).
DEFAULTS = {
    "tiny": dict.fromkeys(VARIANTS, RunDefaults(2, 32, 32, 9)),
    "small": dict.fromkeys(VARIANTS, RunDefaults(2, 384, 384, 17)),
    "full": {"2b": RunDefaults(50, 480, 704, 161), "13b": RunDefaults(30, 512, 704, 121)},
}


@FAMILIES.register("ltx_video")
class LTXVideo(DiffusersFamily):
    """LTX-Video (LTXVideoTransformer3DModel, 1.92 B / 13.0 B parameters at full scale)."""

    name = "ltx_video"
    variants = VARIANTS
    video = True
    size_multiple = 32
    frame_rule = (8, 1)
    pipeline_class = LTXPipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("transformer", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return DEFAULTS[scale][variant]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        config = TRANSFORMER[scale][variant]
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                    base_image_seq_len=1024, max_image_seq_len=4096,
                                                    shift_terminal=0.1)
        return dict(text_encoder=t5_encoder(build, T5[scale]), tokenizer=t5_tokenizer(TEXT_TOKENS[scale]),
                    transformer=build(lambda: LTXVideoTransformer3DModel(**config)),
                    vae=build(lambda: AutoencoderKLLTXVideo(**VAE[scale])), scheduler=scheduler)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "transformer_blocks")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        if args.steps < 2:  # one sigma: shift_terminal divides by zero inside the scheduler
            raise HarnessError(f"run.steps={args.steps} is not valid for {self.name}: use at least 2 steps")
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height,
                    width=args.width, num_frames=args.frames, guidance_scale=3.0,
                    max_sequence_length=TEXT_TOKENS[spec.scale], output_type="pt")

    def output(self, result: Any) -> torch.Tensor:
        return torch.as_tensor(result.frames)
