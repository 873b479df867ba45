"""progan3d: Progressive GAN (Karras et al. 2018) for 3D volumes (and 2D images), image + segmentation channels."""

from medfab.models.progan3d.model import ProGAN3D, ProGAN3DConfig

__all__ = ["ProGAN3D", "ProGAN3DConfig"]
