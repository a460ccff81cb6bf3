"""The Hub's collections of NVIDIA network pickles, as catalog entries for the NVIDIA plugins.

File names come from the public download lists of the projects that use them (DragGAN's
`scripts/download_models.json` and `scripts/gui.sh`, a README that links a DragGan-Models commit).
No public source states their sha256, so these entries are pinned at most to a commit.
"""

from __future__ import annotations

from .base import HubFile, ModelEntry
from .stylegan2 import NVIDIA_NC, RECTANGULAR, TRAINED_WITH_NVIDIA

DRAGGAN_REPO = "DragGan/DragGan-Models"
#: The DragGan-Models commit a public README links its FFHQ-512 pickle at.
DRAGGAN_COMMIT = "20dedd0259ff3009fceefa531c3be8ae4f11cd82"
TENSORFLOW_ERA = ("a TensorFlow-era NVIDIA pickle (TensorFlow variables, a different format); "
                  "convert it with NVIDIA's legacy tools to a PyTorch pickle first")


def _draggan(name: str, filename: str, size: int, what: str, unsupported: str | None = None,
             family: str = "stylegan2-ada") -> ModelEntry:
    return ModelEntry(
        name=f"draggan-{name}", family=family,
        source=HubFile(DRAGGAN_REPO, filename, revision=DRAGGAN_COMMIT), license=NVIDIA_NC,
        description=f"{size}px {what} (Hub {DRAGGAN_REPO}); {TRAINED_WITH_NVIDIA}",
        resolution=size, unsupported=unsupported,
    )


def _self_distilled(animal: str, size: int) -> ModelEntry:
    return _draggan(f"{animal}-{size}", f"stylegan2_{animal}_{size}_pytorch.pkl", size,
                    f"self-distilled StyleGAN2 {animal} (Mokady et al. 2022)")


STYLEGAN2_ADA_MODELS = (
    _self_distilled("lions", 512),
    _self_distilled("dogs", 1024),
    _self_distilled("horses", 256),
    _self_distilled("elephants", 512),
    _draggan("ffhq-512", "stylegan2-ffhq-512x512.pkl", 512, "StyleGAN2 FFHQ (NVIDIA)"),
    _draggan("afhqcat-512", "stylegan2-afhqcat-512x512.pkl", 512, "StyleGAN2 AFHQ cat (NVIDIA)"),
    _draggan("lhq-256", "stylegan2-lhq-256x256.pkl", 256, "StyleGAN2 landscapes (LHQ)"),
    _draggan("human-512", "stylegan_human_v2_512.pkl", 512, "StyleGAN-Human v2",
             unsupported=RECTANGULAR),
    _draggan("car-512", "stylegan2-car-config-f.pkl", 512, "StyleGAN2 config-f LSUN car (NVIDIA)",
             unsupported=TENSORFLOW_ERA),
    _draggan("cat-256", "stylegan2-cat-config-f.pkl", 256, "StyleGAN2 config-f LSUN cat (NVIDIA)",
             unsupported=TENSORFLOW_ERA),
)

STYLEGAN3_MODELS = (
    ModelEntry(
        name="stylegan3-t-lhq-256", family="stylegan3",
        source=HubFile("justinpinkney/stylegan3-t-lhq-256", "lhq-256-stylegan3-t-25Mimg.pkl"),
        license=NVIDIA_NC,
        description="256px StyleGAN3-T landscapes (LHQ), by Justin Pinkney (Hub "
        f"justinpinkney/stylegan3-t-lhq-256); {TRAINED_WITH_NVIDIA}",
        resolution=256,
    ),
)
