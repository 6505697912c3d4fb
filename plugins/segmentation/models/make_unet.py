"""Makes the `segmentation` app's stand-in model: a small 3-D UNet (1 channel in, 4 classes
out: background + class_1..3) with seeded random weights, saved as TorchScript. It is not
trained; it exists so the app exercises the real path (sliding-window inference of a
TorchScript UNet on the shared executor) until the training issue trains one.

Usage: python make_unet.py OUT.pt   (scripts/make-models.sh runs it with the pinned torch)
"""
import sys

import torch
from torch import nn


def block(cin, cout):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout), nn.LeakyReLU(0.1),
        nn.Conv3d(cout, cout, 3, padding=1), nn.InstanceNorm3d(cout), nn.LeakyReLU(0.1),
    )


class UNet(nn.Module):
    def __init__(self, cin=1, classes=4, ch=(4, 8, 16)):
        super().__init__()
        self.enc1, self.enc2, self.bottom = block(cin, ch[0]), block(ch[0], ch[1]), block(ch[1], ch[2])
        self.pool = nn.MaxPool3d(2)
        self.up2, self.dec2 = nn.ConvTranspose3d(ch[2], ch[1], 2, stride=2), block(2 * ch[1], ch[1])
        self.up1, self.dec1 = nn.ConvTranspose3d(ch[1], ch[0], 2, stride=2), block(2 * ch[0], ch[0])
        self.head = nn.Conv3d(ch[0], classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = UNet().eval()
    torch.jit.script(model).save(sys.argv[1])
