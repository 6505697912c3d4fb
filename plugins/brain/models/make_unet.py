"""Makes the `brain` app's `brain_unet` network: MONAI's 3-D UNet (1 channel in, background +
brain out; channels 16-32-64-128-256, strides 2, two residual units) with seeded, freshly
initialised weights, saved as TorchScript. labelhost trains it from these weights
(`POST /train/brain_unet`); nothing here is trained.

Usage: python make_unet.py OUT.pt   (scripts/make-models.sh runs it with the pinned torch
and monai 1.4.0)
"""
import sys

import torch
from monai.networks.nets import UNet


def network():
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2)


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.jit.script(network().eval()).save(sys.argv[1])
