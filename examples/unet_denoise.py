"""A small U-Net that removes noise from the bundled digits (upsampled to 16x16): a Conv2d/GroupNorm
encoder, a ConvTranspose2d and an Upsample decoder, and skip connections joined by concatenation,
trained with MSE to map noisy images to clean ones.

    python examples/unet_denoise.py                # ~30 s: loss every 20 steps, then PSNR before/after
    python examples/unet_denoise.py --steps 600 --plot unet.png

``build_model`` and ``train_step`` take the library (``chainrule`` or ``torch``) as an argument, so
tests/test_examples_ported.py runs the same code in both and compares the numbers.
"""

import argparse
import math

import chainrule as torch
from chainrule.data import load_digits
from chainrule.train import plot_history


def build_model(torch, width=8, groups=4):
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.SiLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.SiLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = block(1, width)                     # 16x16
            self.enc2 = block(width, 2 * width)             # 8x8
            self.mid = block(2 * width, 4 * width)          # 4x4
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)   # learned upsampling 4 -> 8
            self.dec2 = block(4 * width, 2 * width)
            self.up1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                     nn.Conv2d(2 * width, width, 1))           # fixed upsampling 8 -> 16
            self.dec1 = block(2 * width, width)
            self.out = nn.Conv2d(width, 1, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            m = self.mid(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            return x - self.out(d1)  # predict the noise and subtract it (residual learning)

    return UNet()


def train_step(torch, model, optimizer, noisy, clean):
    model.train()
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(noisy), clean)
    loss.backward()
    optimizer.step()
    return loss.item()


def psnr(torch, a, b):
    """Peak signal-to-noise ratio in dB of images in [0, 1]."""
    return 10 * math.log10(1.0 / torch.nn.functional.mse_loss(a, b).item())


def load_images(split):
    images, _ = load_digits(split)
    return torch.nn.functional.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sigma", type=float, default=0.3, help="standard deviation of the added noise")
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(load_images("train")),
                                         batch_size=args.batch_size, shuffle=True, drop_last=True)
    model = build_model(torch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)

    records, step = [], 0
    while step < args.steps:
        for (clean,) in loader:
            step += 1
            noisy = clean + args.sigma * torch.randn_like(clean)
            records.append({"step": step, "loss": train_step(torch, model, optimizer, noisy, clean)})
            scheduler.step()
            if step % args.log_every == 0 or step == args.steps:
                print(f"step {step:5d}  loss (mse) {records[-1]['loss']:.5f}  lr {scheduler.get_last_lr()[0]:.2e}")
            if step == args.steps:
                break

    model.eval()
    clean = load_images("test")
    noisy = clean + args.sigma * torch.randn_like(clean)
    with torch.no_grad():
        denoised = model(noisy).clamp(0, 1)
    before, after = psnr(torch, noisy, clean), psnr(torch, denoised, clean)
    print(f"test PSNR: noisy {before:.2f} dB -> denoised {after:.2f} dB")
    if args.plot:  # chainrule's own plotter; a torch user would call matplotlib here
        plot_history({"steps": records}, args.plot, title="U-Net denoising digits (MSE)")
    return after - before


if __name__ == "__main__":
    main()
