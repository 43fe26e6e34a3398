"""Z-Image (turbo): Qwen3 text encoder, noise/context refiners and 30 main layers streamed, the FLUX.1 VAE."""
from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import kl_vae_config
from families.flux import VAE as FLUX1_VAE
from families.llm_encoders import qwen3
from families.synthetic import ModuleBuilder
from families.tokenizers import qwen_tokenizer
from families.units import block_lists

_FULL = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, n_refiner_layers=2, norm_eps=1e-5,
             qk_norm=True, rope_theta=256.0, t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])
TRANSFORMER = {
    # diffusers' pipeline test
    "tiny": dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
                 n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0,
                 t_scale=1000.0, axes_dims=[8, 4, 4], axes_lens=[256, 32, 32]),
    # the released layout with 8 heads and 8 main layers; cap_feat = the small encoder's 128. One step at 256x256
    # (256 image + 64 caption tokens), fp32 on 2 cores: 0.44 s on an idle Xeon, about 0.7 s on the 2-core EPYC dev
    # box (1.26 s of single-thread CPU time).
    "small": dict(_FULL, dim=1024, n_layers=8, n_heads=8, n_kv_heads=8, cap_feat_dim=128),
    "full": dict(_FULL, dim=3840, n_layers=30, n_heads=30, n_kv_heads=30, cap_feat_dim=2560),
}
VAE = {"tiny": kl_vae_config((32, 64), latent=16, layers=1, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159),
       "small": FLUX1_VAE["small"], "full": FLUX1_VAE["full"]}


def _transformer(config: dict) -> ZImageTransformer2DModel:
    """The transformer with non-zero pad tokens (learned in the released model), as diffusers' tests set them."""
    model = ZImageTransformer2DModel(**config)
    with torch.no_grad():
        model.x_pad_token.fill_(1.0)
        model.cap_pad_token.fill_(1.0)
    return model


@FAMILIES.register("z_image")
class ZImage(DiffusersFamily):
    """Z-Image-Turbo (ZImageTransformer2DModel, 6.2 B parameters at full scale)."""

    name = "z_image"
    variants = ("turbo",)
    size_multiple = 16
    pipeline_class = ZImagePipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("transformer", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return {"tiny": RunDefaults(2, 32, 32), "small": RunDefaults(3, 256, 256),
                "full": RunDefaults(9, 1024, 1024)}[scale]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        return dict(
            text_encoder=qwen3(build, scale), tokenizer=qwen_tokenizer(),
            transformer=build(lambda: _transformer(TRANSFORMER[scale])),
            vae=build(lambda: AutoencoderKL(**VAE[scale])),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "noise_refiner", "context_refiner", "layers")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        # turbo is distilled: no CFG, one transformer call a step
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=0.0, output_type="pt")
