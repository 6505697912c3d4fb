"""Makes the `brain` app's `brain_unet` network: MONAI's 3-D UNet (1 channel in, background +
brain out; channels 16-32-64-128-256, strides 2, two residual units) with seeded, freshly
initialised weights, saved as TorchScript. labelhost trains it from these weights
(`POST /train/brain_unet`); nothing here is trained.

With `--dropout P` it makes the same network with dropout P in every unit instead: the
parameter names and shapes are the same, so the executor copies trained weights into it for
Monte-Carlo dropout (`brain_unet_dropout.pt`, MONAI Label's epistemic scoring uses 0.2).

Usage: python make_unet.py OUT.pt [--dropout P]   (scripts/make-models.sh runs it with the
pinned torch and monai 1.4.0)
"""
import sys

import torch
from monai.networks.nets import UNet


def network(dropout=0.0):
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2, dropout=dropout)


if __name__ == "__main__":
    dropout = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--dropout" else 0.0
    torch.manual_seed(0)
    torch.jit.script(network(dropout).eval()).save(sys.argv[1])
