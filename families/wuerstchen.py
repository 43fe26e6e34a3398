"""Wuerstchen v2: CLIP-bigG + a prior, CLIP-H + a decoder, both denoisers streamed one stage after the other.

Models come from diffusers' deprecated pipelines; everything Wuerstchen-specific stays in this module.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from diffusers import DDPMWuerstchenScheduler, WuerstchenCombinedPipeline
from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.checkpoint import check_checkpoint
from families.diffusers_family import DiffusersFamily
from families.encoders import CLIP_G, CLIP_H, clip_config, clip_text
from families.synthetic import ModuleBuilder
from families.tokenizers import clip_tokenizer
from families.units import block_lists
from harness.errors import HarnessError

# tiny: diffusers' test configs, except that the decoder takes the prior's output (inject_effnet, effnet_embd=c_in);
# the test decoder ignores it, so the prior would not reach the image.
# small: the released structure with head width 64, the prior at half the width and depth, the decoder at 2/5 of
# the width and about half the depth; at 512 x 512 one prior step (with CFG) and one decoder step each take about
# 0.6 s on 2 CPU cores in fp32.
PRIOR = {
    "tiny": dict(c_in=2, c=8, depth=2, c_cond=32, c_r=8, nhead=2),
    "small": dict(c_in=16, c=768, c_cond=256, c_r=64, depth=16, nhead=12),
    "full": dict(c_in=16, c=1536, c_cond=1280, c_r=64, depth=32, nhead=24),
}
_LEVELS = dict(level_config=["CT", "CTA", "CTA", "CTA"], inject_effnet=[False, True, True, True])
DECODER = {
    "tiny": dict(c_cond=32, c_hidden=[320], nhead=[-1], blocks=[4], level_config=["CT"], clip_embd=32,
                 inject_effnet=[True], effnet_embd=2),
    "small": dict(c_cond=256, c_hidden=[128, 256, 512, 512], nhead=[-1, 4, 8, 8], blocks=[2, 2, 8, 2], clip_embd=256,
                  **_LEVELS),
    "full": dict(c_cond=1024, c_hidden=[320, 640, 1280, 1280], nhead=[-1, 10, 20, 20], blocks=[4, 4, 14, 4],
                 clip_embd=1024, **_LEVELS),
}
# The prior reads CLIP-bigG's last hidden state, the decoder CLIP-H's: both are plain CLIPTextModels.
PRIOR_TEXT = {"tiny": clip_config(hidden=32, layers=5, heads=4), "small": clip_config(hidden=256, layers=4, heads=4),
              "full": CLIP_G}
DECODER_TEXT = {"tiny": clip_config(hidden=32, layers=5, heads=4), "small": clip_config(hidden=256, layers=4, heads=4),
                "full": CLIP_H}
VQGAN = {"tiny": dict(bottleneck_blocks=1, num_vq_embeddings=2), "small": dict(embed_dim=64, bottleneck_blocks=2),
         "full": dict()}
DEFAULTS = {"tiny": RunDefaults(2, 128, 128), "small": RunDefaults(5, 512, 512), "full": RunDefaults(60, 1024, 1024)}
# The parts of a saved WuerstchenCombinedPipeline folder, with weights and without.
WEIGHTS = {"prior_text_encoder": CLIPTextModel, "prior_prior": WuerstchenPrior, "text_encoder": CLIPTextModel,
           "decoder": WuerstchenDiffNeXt, "vqgan": PaellaVQModel}
CONFIGS = {"prior_tokenizer": CLIPTokenizer, "tokenizer": CLIPTokenizer, "prior_scheduler": DDPMWuerstchenScheduler,
           "scheduler": DDPMWuerstchenScheduler}
DECODER_STEP_RATIO = 5  # released defaults: 60 prior steps, 12 decoder steps


@contextlib.contextmanager
def default_decoder_init() -> Iterator[None]:
    """Build WuerstchenDiffNeXt with PyTorch's default init instead of its `_init_weights`.

    That hook reruns the whole-model init once per submodule (quadratic: about 56 s for the full model on CPU,
    several seconds even on meta), scales the residual projections towards zero and zeroes the output layer,
    so random decoder blocks would not reach the output at all and a parity check could not see them.
    """
    init = WuerstchenDiffNeXt._init_weights
    WuerstchenDiffNeXt._init_weights = lambda self, module: None
    try:
        yield
    finally:
        WuerstchenDiffNeXt._init_weights = init


def diffnext(config: dict[str, Any]) -> WuerstchenDiffNeXt:
    """The decoder (WuerstchenDiffNeXt) with PyTorch's default init."""
    with default_decoder_init():
        return WuerstchenDiffNeXt(**config)


def decoder_steps(steps: int) -> int:
    """Decoder steps for `steps` prior steps (run.steps drives the prior; the decoder runs a fifth of it)."""
    return max(1, steps // DECODER_STEP_RATIO)


@FAMILIES.register("wuerstchen")
class Wuerstchen(DiffusersFamily):
    """Wuerstchen v2 (WuerstchenPrior 0.99 B + WuerstchenDiffNeXt 1.06 B parameters at full scale).

    Sizes are multiples of 128: the prior's latent side is ceil(side / 42.67), the decoder's 10.67 times that,
    and the VQ-GAN upsamples by 4, so only multiples of 128 come back at the size asked for.
    """

    name = "wuerstchen"
    variants = ("v2",)
    size_multiple = 128
    pipeline_class = WuerstchenCombinedPipeline
    stages = (("prior_text_encoder", "encoder", ("forward",)), ("prior_prior", "denoiser", ("forward",)),
              ("text_encoder", "encoder", ("forward",)), ("decoder", "denoiser", ("forward",)),
              ("vqgan", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return DEFAULTS[scale]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        return dict(
            prior_text_encoder=clip_text(build, PRIOR_TEXT[scale]), prior_tokenizer=clip_tokenizer(),
            prior_prior=build(lambda: WuerstchenPrior(**PRIOR[scale])), prior_scheduler=DDPMWuerstchenScheduler(),
            text_encoder=clip_text(build, DECODER_TEXT[scale]), tokenizer=clip_tokenizer(),
            decoder=build(lambda: diffnext(DECODER[scale])), scheduler=DDPMWuerstchenScheduler(),
            vqgan=build(lambda: PaellaVQModel(**VQGAN[scale])))

    def make_pipeline(self, spec: BuildSpec) -> Any:
        """Synthetic, or a saved WuerstchenCombinedPipeline folder loaded component by component.

        Its model_index.json names the models ["diffusers", "WuerstchenPrior"] etc., which diffusers 0.42
        cannot resolve (they are not exported at the top level any more), even when they are passed in.
        """
        if spec.weights is None:
            return super().make_pipeline(spec)
        path = spec.weights
        check_checkpoint(path, self.name, (self.pipeline_class.__name__,))
        try:
            with default_decoder_init():
                parts = {name: cls.from_pretrained(str(path / name), dtype=spec.dtype, use_safetensors=True,
                                                   local_files_only=True) for name, cls in WEIGHTS.items()}
            parts |= {name: cls.from_pretrained(str(path / name)) for name, cls in CONFIGS.items()}
        except Exception as exc:  # diffusers and transformers raise several types for unreadable folders
            raise HarnessError(f"family.weights={path} could not be loaded: {type(exc).__name__}: {exc}") from exc
        return self.pipeline_class(**parts).to(spec.weights_device)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        if name == "prior_prior":
            return block_lists(module, "blocks")
        # Each down level's output is the skip of the matching up level; the units are the blocks of each level.
        return [(f"{levels}.{i}.{j}", block) for levels in ("down_blocks", "up_blocks")
                for i, level in enumerate(getattr(module, levels)) for j, block in enumerate(level)]

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        return dict(prompt=args.prompt, height=args.height, width=args.width, prior_num_inference_steps=args.steps,
                    prior_guidance_scale=4.0, num_inference_steps=decoder_steps(args.steps),
                    decoder_guidance_scale=0.0, output_type="pt")
