"""A variational autoencoder on the bundled 8x8 digits, as in PyTorch's examples/vae: an MLP encoder to
(mu, logvar), the reparameterisation trick, a sigmoid decoder, and the loss BCE(sum) + KL divergence.

    python examples/vae.py                  # ~10 s: loss per digit every epoch, then the test loss
    python examples/vae.py --epochs 30 --plot vae.png

``build_model`` and ``train_step`` take the library (``chainrule`` or ``torch``) as an argument, so
tests/test_examples_ported.py runs the same code in both and compares the numbers.
"""

import argparse

import chainrule as torch
from chainrule.data import load_digits
from chainrule.train import plot_history


def build_model(torch, pixels=64, hidden=128, latent=8):
    nn, F = torch.nn, torch.nn.functional

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(pixels, hidden)
            self.fc21 = nn.Linear(hidden, latent)
            self.fc22 = nn.Linear(hidden, latent)
            self.fc3 = nn.Linear(latent, hidden)
            self.fc4 = nn.Linear(hidden, pixels)

        def encode(self, x):
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu, logvar, eps=None):
            std = (0.5 * logvar).exp()
            if eps is None:  # tests pass eps so that both libraries use the same noise
                eps = torch.randn_like(std)
            return mu + eps * std

        def decode(self, z):
            return self.fc4(F.relu(self.fc3(z))).sigmoid()

        def forward(self, x, eps=None):
            mu, logvar = self.encode(x.view(-1, pixels))
            z = self.reparameterize(mu, logvar, eps)
            return self.decode(z), mu, logvar

    return VAE()


def loss_function(F, recon_x, x, mu, logvar):
    """Reconstruction + KL divergence losses summed over all elements and batch (Kingma & Welling, App. B)."""
    bce = F.binary_cross_entropy(recon_x, x.view(recon_x.shape), reduction="sum")
    kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return bce + kld


def train_step(torch, model, optimizer, x, eps=None):
    """One step on a batch ``x`` (N, 64) in [0, 1]; returns the summed loss of the batch."""
    model.train()
    optimizer.zero_grad()
    recon, mu, logvar = model(x, eps)
    loss = loss_function(torch.nn.functional, recon, x, mu, logvar)
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    train = torch.utils.data.TensorDataset(load_digits("train", flatten=True)[0])
    test_x = load_digits("test", flatten=True)[0]
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True)
    model = build_model(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    records = []
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for (x,) in loader:
            total += train_step(torch, model, optimizer, x)
        records.append({"epoch": epoch, "loss": total / len(train)})
        print(f"epoch {epoch:3d}  train loss per digit {total / len(train):.3f}")

    model.eval()
    with torch.no_grad():
        recon, mu, logvar = model(test_x)
        test_loss = loss_function(torch.nn.functional, recon, test_x, mu, logvar).item() / len(test_x)
        samples = model.decode(torch.randn(8, mu.shape[1]))
    print(f"test loss per digit {test_loss:.3f} (BCE + KL, in nats; an all-0.5 decoder scores {64 * 0.6931:.1f})")
    for row in samples[:3].view(3, 8, 8):  # three sampled digits as ASCII art
        print("\n".join("".join(" .:-=+*#%@"[min(9, int(v * 10))] for v in line.tolist()) for line in row), end="\n\n")
    if args.plot:  # chainrule's own plotter; a torch user would call matplotlib here
        plot_history({"epochs": records}, args.plot, title="VAE on digits")
    return test_loss


if __name__ == "__main__":
    main()
