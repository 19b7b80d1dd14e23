"""DCGAN on the bundled 8x8 handwritten digits, upsampled to 16x16, in the style of PyTorch's
examples/dcgan: a ConvTranspose2d generator (BatchNorm, ReLU, Tanh), a strided-conv discriminator
(LeakyReLU, BatchNorm), BCELoss, Adam(0.5, 0.999) and the weights_init of the original.

    python examples/dcgan_digits.py                   # ~30 s: losses and D(x), D(G(z)) every 15 steps
    python examples/dcgan_digits.py --steps 600 --plot gan.png

``build_models`` and ``train_step`` take the library (``chainrule`` or ``torch``) as an argument, so
tests/test_examples_ported.py runs the same code in both and compares the numbers.
"""

import argparse

import chainrule as torch
from chainrule.data import load_digits
from chainrule.train import plot_history

NZ = 16  # size of the latent vector


def weights_init(m):
    """The DCGAN paper's initialisation, as in pytorch/examples: conv ~ N(0, 0.02), BN weight ~ N(1, 0.02)."""
    name = type(m).__name__
    if name.find("Conv") != -1:
        m.weight.data.normal_(0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


def build_models(nn, nz=NZ, ngf=16, ndf=16):
    """(generator, discriminator) for 1x16x16 images: z (N, nz, 1, 1) -> 4x4 -> 8x8 -> 16x16 and back."""
    generator = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),
    )
    discriminator = nn.Sequential(
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )
    return generator, discriminator


def train_step(torch, netG, netD, optG, optD, real, noise):
    """One DCGAN step on a batch of real images in [-1, 1] and latent ``noise`` (N, nz, 1, 1):
    (1) update D to maximise log D(x) + log(1 - D(G(z))), (2) update G to maximise log D(G(z)).
    Returns (loss_D, loss_G, D(x), D(G(z)) before G's update)."""
    criterion = torch.nn.BCELoss()
    n = real.shape[0]
    real_label = torch.full((n,), 1.0, dtype=real.dtype)
    fake_label = torch.full((n,), 0.0, dtype=real.dtype)

    netD.zero_grad()
    output = netD(real).view(-1)
    errD_real = criterion(output, real_label)
    errD_real.backward()
    d_x = output.mean().item()
    fake = netG(noise)
    output = netD(fake.detach()).view(-1)
    errD_fake = criterion(output, fake_label)
    errD_fake.backward()
    optD.step()

    netG.zero_grad()
    output = netD(fake).view(-1)
    errG = criterion(output, real_label)  # fake labels are real for the generator's cost
    errG.backward()
    optG.step()
    return (errD_real + errD_fake).item(), errG.item(), d_x, output.mean().item()


def load_images(split="train"):
    """The digits in [-1, 1], upsampled from 8x8 to 16x16 (bilinear) so the net has two stride-2 stages."""
    images, _ = load_digits(split)
    return torch.nn.functional.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False) * 2 - 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--log-every", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    dataset = torch.utils.data.TensorDataset(load_images("train"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    netG, netD = build_models(torch.nn)
    netG.apply(weights_init)
    netD.apply(weights_init)
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr, betas=(0.5, 0.999))
    fixed_noise = torch.randn(64, NZ, 1, 1)

    records, step = [], 0
    while step < args.steps:
        for (real,) in loader:
            step += 1
            noise = torch.randn(real.shape[0], NZ, 1, 1)
            err_d, err_g, d_x, d_gz = train_step(torch, netG, netD, optG, optD, real, noise)
            records.append({"step": step, "loss": err_d + err_g})
            if step % args.log_every == 0 or step == args.steps:
                print(f"step {step:5d}  loss_D {err_d:.4f}  loss_G {err_g:.4f}  D(x) {d_x:.3f}  D(G(z)) {d_gz:.3f}")
            if step == args.steps:
                break

    # final metric: how far generated digits lie from the nearest real test digit, against pure noise
    netG.eval()
    with torch.no_grad():
        fakes = netG(fixed_noise).reshape(64, -1)
        test = load_images("test").reshape(-1, 256)
        noise_images = torch.rand(64, 256) * 2 - 1
        nearest = torch.cdist(fakes, test).min(1).values.mean().item()
        baseline = torch.cdist(noise_images, test).min(1).values.mean().item()
    print(f"mean distance of a generated digit to its nearest real test digit {nearest:.3f} "
          f"(uniform noise images: {baseline:.3f})")
    if args.plot:  # chainrule's own plotter; a torch user would call matplotlib here
        plot_history({"steps": records}, args.plot, title="DCGAN on digits (loss_D + loss_G)")
    return nearest


if __name__ == "__main__":
    main()
