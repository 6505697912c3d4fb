"""Makes the `brain` app's `brain_unet` network: MONAI's 3-D UNet (1 channel in, background +
brain out; channels 16-32-64-128-256, strides 2, two residual units) with seeded, freshly
initialised weights, saved as TorchScript. labelhost trains it from these weights
(`POST /train/brain_unet`); nothing here is trained.

With `--dropout P` it makes the same network with dropout P in every unit instead: the
parameter names and shapes are the same, so the executor copies trained weights into it for
Monte-Carlo dropout (`brain_unet_dropout.pt`, MONAI Label's epistemic scoring uses 0.2).

With `--in-channels 3` it makes the click network of `brain_deepedit` / `brain_deepgrow`:
the image plus one guidance channel per label (brain, background), as MONAI's DeepEdit
networks take them (`brain_deepedit.pt`).

Usage: python make_unet.py OUT.pt [--dropout P] [--in-channels N]   (scripts/make-models.sh
runs it with the pinned torch and monai 1.4.0)
"""
import argparse

import torch
from monai.networks.nets import UNet


def network(dropout=0.0, in_channels=1):
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=2, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2, dropout=dropout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--in-channels", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.jit.script(network(args.dropout, args.in_channels).eval()).save(args.out)
