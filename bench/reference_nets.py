"""Straightforward reference networks and training steps for bench_train_speed.py (2D only).

- DCGAN: the pytorch/examples ``dcgan/main.py`` Generator / Discriminator (BN, ReLU / LeakyReLU, sigmoid +
  BCELoss) and its plain step; sizes above 64 add one more layer per doubling, as that example's pattern.
  ``CDCGANRef`` is the same made class-conditional (label embedding + z in G, label plane + image in D).
- pix2pix: junyanz ``UnetGenerator`` (nested UnetSkipConnectionBlock, BN, dropout) + ``NLayerDiscriminator``
  and the plain ``Pix2PixModel.optimize_parameters`` step (vanilla GAN loss + 100 * L1).
  ``CondPix2PixRef`` is the same made class-conditional and two-stage as medfab's pix2pix (class planes and a noise
  plane in G's input, class planes in D's, and a plain conditional VAE on the 16x16 maps trained in the same step).
- WGAN-GP: the DCGAN networks without BN in the critic, Algorithm 1 of Gulrajani et al. written plainly.
- VAE: the same conv encoder/decoder as medfab's, written as plain nn.Sequential, plain ELBO step.
None of these are imported by medfab; they exist only to time medfab against.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn


# --- DCGAN (pytorch/examples) ---------------------------------------------------------------------
def dcgan_G(nz: int, ngf: int, nc: int, size: int) -> nn.Sequential:
    n = int(math.log2(size)) - 2
    m = 2 ** (n - 1)
    layers = [nn.ConvTranspose2d(nz, ngf * m, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * m), nn.ReLU(True)]
    while m > 1:
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf * m // 2), nn.ReLU(True)]
        m //= 2
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_D(ndf: int, nc: int, size: int, *, bn: bool = True, sigmoid: bool = True) -> nn.Sequential:
    n = int(math.log2(size)) - 2
    layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    m = 1
    for _ in range(n - 1):
        layers += [nn.Conv2d(ndf * m, ndf * m * 2, 4, 2, 1, bias=False)]
        layers += [nn.BatchNorm2d(ndf * m * 2)] if bn else []
        layers += [nn.LeakyReLU(0.2, inplace=True)]
        m *= 2
    layers += [nn.Conv2d(ndf * m, 1, 4, 1, 0, bias=False)] + ([nn.Sigmoid()] if sigmoid else [])
    return nn.Sequential(*layers)


class DCGANRef:
    def __init__(self, size: int, nz: int = 100, ngf: int = 64, ndf: int = 64):
        self.nz = nz
        self.netG, self.netD = dcgan_G(nz, ngf, 1, size), dcgan_D(ndf, 1, size)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.criterion = nn.BCELoss()

    def step(self, x, y):
        b = x.shape[0]
        self.netD.zero_grad()
        label = torch.full((b,), 1.0)
        errD_real = self.criterion(self.netD(x).view(-1), label)
        errD_real.backward()
        fake = self.netG(torch.randn(b, self.nz, 1, 1))
        label.fill_(0.0)
        errD_fake = self.criterion(self.netD(fake.detach()).view(-1), label)
        errD_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        errG = self.criterion(self.netD(fake).view(-1), label)
        errG.backward()
        self.optG.step()


class CDCGANRef:
    """The pytorch/examples DCGAN made class-conditional, the canonical way: a label embedding concatenated to z
    in G, a label plane (an embedding reshaped to H x W) concatenated to the image in D; BN in G and D, sigmoid +
    BCELoss, one G forward per step reused by the G update. ``step`` returns the losses as tensors (no sync)."""

    def __init__(self, size: int, num_classes: int, nz: int = 100, ngf: int = 64, ndf: int = 64,
                 embed_dim: int = 32, device: str | torch.device = "cpu"):
        self.nz, self.size, self.device = nz, size, torch.device(device)
        self.netG = dcgan_G(nz + embed_dim, ngf, 1, size).to(self.device)
        self.netD = dcgan_D(ndf, 2, size).to(self.device)
        self.embG = nn.Embedding(num_classes, embed_dim).to(self.device)
        self.embD = nn.Embedding(num_classes, size * size).to(self.device)
        self.optG = torch.optim.Adam([*self.netG.parameters(), *self.embG.parameters()], lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam([*self.netD.parameters(), *self.embD.parameters()], lr=2e-4, betas=(0.5, 0.999))
        self.criterion = nn.BCELoss()

    def D(self, x, y):
        return self.netD(torch.cat([x, self.embD(y).view(-1, 1, self.size, self.size)], 1)).view(-1)

    def bce(self, p, label):
        with torch.autocast("cuda", enabled=False):       # BCELoss refuses autocast (bench --ref-bf16)
            return self.criterion(p.float(), label)

    def step(self, x, y):
        b = x.shape[0]
        self.optD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        errD_real = self.bce(self.D(x, y), label)
        errD_real.backward()
        z = torch.cat([torch.randn(b, self.nz, device=self.device), self.embG(y)], 1)[:, :, None, None]
        fake = self.netG(z)
        label.fill_(0.0)
        errD_fake = self.bce(self.D(fake.detach(), y), label)
        errD_fake.backward()
        self.optD.step()
        self.optG.zero_grad()
        label.fill_(1.0)
        errG = self.bce(self.D(fake, y), label)
        errG.backward()
        self.optG.step()
        return errD_real + errD_fake, errG


# --- WGAN-GP (plain) ------------------------------------------------------------------------------
class WGANGPRef:
    def __init__(self, size: int, nz: int = 100, ngf: int = 64, ndf: int = 64, n_critic: int = 5):
        self.nz, self.n_critic, self.i = nz, n_critic, 0
        self.netG, self.netD = dcgan_G(nz, ngf, 1, size), dcgan_D(ndf, 1, size, bn=False, sigmoid=False)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=1e-4, betas=(0.0, 0.9))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=1e-4, betas=(0.0, 0.9))

    def step(self, x, y):   # one critic iteration per call; G every n_critic calls (Algorithm 1)
        b = x.shape[0]
        with torch.no_grad():
            fake = self.netG(torch.randn(b, self.nz, 1, 1))
        eps = torch.rand(b, 1, 1, 1)
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.netD(x_hat).sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = self.netD(fake).mean() - self.netD(x).mean() + 10 * gp
        self.optD.zero_grad()
        loss.backward()
        self.optD.step()
        self.i += 1
        if self.i % self.n_critic == 0:
            for p in self.netD.parameters():
                p.requires_grad_(False)
            g_loss = -self.netD(self.netG(torch.randn(b, self.nz, 1, 1))).mean()
            self.optG.zero_grad()
            g_loss.backward()
            self.optG.step()
            for p in self.netD.parameters():
                p.requires_grad_(True)


# --- pix2pix (junyanz) ----------------------------------------------------------------------------
class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 use_dropout=False):
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=False)
        downrelu, downnorm = nn.LeakyReLU(0.2, True), nn.BatchNorm2d(inner_nc)
        uprelu, upnorm = nn.ReLU(True), nn.BatchNorm2d(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=False)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=False)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            model += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def unet_G(input_nc, output_nc, num_downs, ngf=64):
    block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(num_downs - 5):
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
    block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
    block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
    block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
    return UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)


def patch_D(input_nc, ndf=64, n_layers=3):
    seq = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** n_layers, 8)
    seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    return nn.Sequential(*seq)


class Pix2PixRef:
    def __init__(self, size: int, ngf: int = 64, ndf: int = 64, lambda_L1: float = 100.0):
        self.netG, self.netD = unet_G(1, 1, int(math.log2(size)), ngf), patch_D(2, ndf)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.lambda_L1 = lambda_L1

    def to(self, device):
        self.netG.to(device), self.netD.to(device)
        return self

    def step(self, x, y):
        real_A = F.interpolate(F.adaptive_avg_pool2d(x, 16), size=x.shape[2:], mode="bilinear")
        real_B = x
        fake_B = self.netG(real_A)
        return self.optimize_parameters(real_A, real_B, fake_B)

    def optimize_parameters(self, real_A, real_B, fake_B, planes=()):
        """junyanz ``Pix2PixModel.optimize_parameters`` after the G forward; D sees ``cat(real_A, B, *planes)``."""
        # backward_D
        for p in self.netD.parameters():
            p.requires_grad_(True)
        self.optD.zero_grad()
        pred_fake = self.netD(torch.cat((real_A, fake_B, *planes), 1).detach())
        pred_real = self.netD(torch.cat((real_A, real_B, *planes), 1))
        loss_D = 0.5 * (F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
                        + F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)))
        loss_D.backward()
        self.optD.step()
        # backward_G
        for p in self.netD.parameters():
            p.requires_grad_(False)
        self.optG.zero_grad()
        pred_fake = self.netD(torch.cat((real_A, fake_B, *planes), 1))
        loss_G = (F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))
                  + F.l1_loss(fake_B, real_B) * self.lambda_L1)
        loss_G.backward()
        self.optG.step()
        return loss_D, loss_G


class CondPix2PixRef(Pix2PixRef):
    """``Pix2PixRef`` doing the work medfab's pix2pix does per step, written plainly: a stage-A step (``VAERef`` on
    the 16x16 maps), then the junyanz step with G's input ``cat(map, class planes, noise plane)``, D's input
    ``cat(map, image, class planes)``, and half of the maps taken from stage A's reconstructions."""

    def __init__(self, size: int, num_classes: int, ngf: int = 64, ndf: int = 64, map_width: int = 32,
                 map_latent: int = 32, lambda_L1: float = 100.0):
        super().__init__(size, ngf, ndf, lambda_L1)
        self.K = num_classes
        self.netG, self.netD = unet_G(2 + num_classes, 1, int(math.log2(size)), ngf), patch_D(2 + num_classes, ndf)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.prior = VAERef(16, num_classes, latent=map_latent, width=map_width)

    def to(self, device):
        self.prior.to(device)
        return super().to(device)

    def step(self, x, y):
        m = F.adaptive_avg_pool2d(x, 16)
        loss_A, m_hat = self.prior.elbo_step(m, y)
        use_A = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
        real_A = F.interpolate(torch.where(use_A, m_hat.detach(), m), size=x.shape[2:], mode="bilinear")
        planes = F.one_hot(y, self.K).float()[:, :, None, None].expand(-1, -1, *x.shape[2:])
        real_B = x
        fake_B = self.netG(torch.cat((real_A, planes, torch.randn_like(real_A)), 1))
        loss_D, loss_G = self.optimize_parameters(real_A, real_B, fake_B, (planes,))
        return loss_A, loss_D, loss_G


# --- VAE (plain) ----------------------------------------------------------------------------------
class VAERef(nn.Module):
    def __init__(self, size: int, num_classes: int, latent: int = 128, width: int = 32, max_ch: int = 256):
        super().__init__()
        n = int(math.log2(size)) - 2
        ch = [min(width * 2 ** i, max_ch) for i in range(n)]
        self.K, self.latent, self.top = num_classes, latent, ch[-1]
        enc, c_in = [], 1 + num_classes
        for c in ch:
            enc += [nn.Conv2d(c_in, c, 4, 2, 1, bias=False), nn.GroupNorm(math.gcd(8, c), c),
                    nn.LeakyReLU(0.2, True)]
            c_in = c
        self.enc = nn.Sequential(*enc)
        self.enc_fc = nn.Linear(ch[-1] * 16, 2 * latent)
        self.emb = nn.Embedding(num_classes, 32)
        self.dec_fc = nn.Linear(latent + 32, ch[-1] * 16)
        dec, rch = [nn.ReLU(True)], ch[::-1]
        for a, b in itertools.pairwise(rch):
            dec += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.GroupNorm(math.gcd(8, b), b),
                    nn.ReLU(True)]
        dec += [nn.ConvTranspose2d(rch[-1], 1, 4, 2, 1), nn.Tanh()]
        self.dec = nn.Sequential(*dec)
        self.opt = torch.optim.Adam(self.parameters(), lr=1e-3)

    def step(self, x, y):
        self.elbo_step(x, y)

    def elbo_step(self, x, y):
        """One ELBO step; returns (loss, reconstruction)."""
        planes = F.one_hot(y, self.K).float()[:, :, None, None].expand(-1, -1, *x.shape[2:])
        mu, logvar = self.enc_fc(self.enc(torch.cat([x, planes], 1)).flatten(1)).chunk(2, 1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        x_hat = self.dec(self.dec_fc(torch.cat([z, self.emb(y)], 1)).view(-1, self.top, 4, 4))
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).sum(1).mean()
        loss = (x - x_hat).abs().flatten(1).sum(1).mean() + kl
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss, x_hat
