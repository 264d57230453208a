"""Formula-driven pretraining data: a FractalDB-style generator (Kataoka et al., ACCV 2020,
"Pre-training without Natural Images").

* A **class** is a random iterated function system (IFS): 2-4 affine maps
  ``(x, y) -> (a x + b y + e, c x + d y + f)`` with every coefficient uniform in [-1, 1], each map
  chosen with probability proportional to ``|det|`` (as in FractalDB). Systems with a map that is
  not a contraction are dropped (they have no bounded attractor and draw as spiky point clouds),
  and degenerate systems (collapsing to a speck or a line) are rejected by the paper's **filling
  rate**: the fraction of a canonical render's pixels the attractor covers must reach a threshold.
* An **instance** is its class's system with FractalDB's weight perturbation (one coefficient scaled
  by a factor in [0.8, 1.2]) plus a small jitter of all coefficients, drawn with random colours
  (one per map), a random rotation, random flips and a random scale and position.
* Rendering runs the **chaos game vectorised over points and images**: every image runs many
  chains in parallel, so one Python loop of a few dozen steps draws a whole batch. Points are
  splatted at twice the resolution and averaged down (anti-aliasing). Most drawings sit on a
  random colour gradient rather than FractalDB's black, which teaches the trunk that a picture's
  global colour is not its class (measurably better transfer to colourful targets).

Everything random comes from seeded ``torch.Generator`` objects on the CPU, hits are counted by
integer ``bincount`` and colours mixed elementwise, so the same seed gives the same bytes.

    systems = sample_ifs_classes(100, seed=0)
    images, labels = make_fractal_dataset(100, 100, 64, seed=0)   # uint8 [10000, 3, 64, 64]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Defaults of the generator, recorded in the pretraining recipe.
MIN_MAPS, MAX_MAPS = 2, 4
FILL_GRID = 64            # canonical render size for the filling rate (pixels per side)
FILL_THRESHOLD = 0.12     # minimum fraction of the canonical render covered by the attractor
MAX_SINGULAR = 1.0        # every map must be a contraction (largest singular value below this)
PERTURBATION = 0.2        # FractalDB weight perturbation: one coefficient x U[1-p, 1+p]
JITTER = 0.03             # every coefficient x U[1-j, 1+j] on top (more distinct instances)
CHAINS = 256              # parallel chaos-game chains per image
BURN_IN = 24              # steps before a chain is on the attractor (maps are contractions)
BLACK_BACKGROUND = 0.25   # share of renders on black (FractalDB); the rest on random gradients
POINTS_PER_PIXEL = 4      # chaos-game points per output pixel (drawn at 2x: one per subpixel)


@dataclass(frozen=True)
class IFS:
    """One iterated function system: ``maps`` [M, 6] rows (a, b, c, d, e, f), ``probs`` [M]."""

    maps: torch.Tensor
    probs: torch.Tensor


def is_contractive(maps: torch.Tensor, max_singular: float = MAX_SINGULAR) -> torch.Tensor:
    """[..., M, 6] -> [...] bool: every map's linear part has largest singular value < bound."""
    lin = maps[..., :4].reshape(*maps.shape[:-1], 2, 2)
    return (torch.linalg.matrix_norm(lin, ord=2) < max_singular).all(-1)


def _probs_from_maps(maps: torch.Tensor) -> torch.Tensor:
    """FractalDB: map i is chosen with probability proportional to |det A_i|."""
    det = (maps[..., 0] * maps[..., 3] - maps[..., 1] * maps[..., 2]).abs().clamp_min(1e-3)
    return det / det.sum(-1, keepdim=True)


def _stack(systems: list[IFS]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad systems to one tensor: maps [B, MAX, 6] and probs [B, MAX] (padding has prob 0)."""
    m_max = max(s.maps.shape[0] for s in systems)
    maps = torch.zeros(len(systems), m_max, 6, dtype=torch.float32)
    probs = torch.zeros(len(systems), m_max, dtype=torch.float32)
    for i, s in enumerate(systems):
        maps[i, : s.maps.shape[0]] = s.maps
        probs[i, : s.probs.shape[0]] = s.probs
    return maps, probs


def _chaos_game(maps: torch.Tensor, probs: torch.Tensor, points_per_image: int,
                gen: torch.Generator, chains: int = CHAINS,
                burn_in: int = BURN_IN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the chaos game for B systems at once.

    maps [B, M, 6], probs [B, M] -> x [B, N], y [B, N] (float32; huge or non-finite for
    divergent systems) and the index of the map that produced each point [B, N].
    """
    b, m, _ = maps.shape
    steps = max(1, math.ceil(points_per_image / chains))
    total = burn_in + steps
    # Map choices for every chain and step, by inverse-CDF sampling (one call for the batch).
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[:, -1:]
    u = torch.rand(b, total * chains, generator=gen)
    choice = torch.searchsorted(cdf.contiguous(), u).clamp_max_(m - 1).view(b, total, chains)
    coef = maps.reshape(b * m, 6).t().contiguous()  # [6, B*M]: one row per coefficient
    flat_choice = choice + (torch.arange(b) * m)[:, None, None]
    x = torch.rand(b, chains, generator=gen) * 2 - 1
    y = torch.rand(b, chains, generator=gen) * 2 - 1
    xs = torch.empty(b, steps, chains)
    ys = torch.empty(b, steps, chains)
    for t in range(total):
        c = coef[:, flat_choice[:, t]]  # [6, B, chains]
        x, y = (c[0] * x + c[1] * y + c[4], c[2] * x + c[3] * y + c[5])
        if t % 8 == 7:
            # Divergent systems would overflow to inf/nan; clamping now and then keeps the
            # arithmetic finite, and the huge extent gets such a system rejected.
            x, y = x.clamp_(-1e6, 1e6), y.clamp_(-1e6, 1e6)
        if t >= burn_in:
            xs[:, t - burn_in] = x
            ys[:, t - burn_in] = y
    n = steps * chains
    return xs.view(b, n), ys.view(b, n), choice[:, burn_in:].reshape(b, n)


def _fit_to_unit_box(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | None = None,
                     offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Map each image's points into [0, 1]^2 by their bounding box, keeping the aspect ratio.

    As in FractalDB the full extent (min/max) is used, so a system whose points spread without
    bound (heavy tails, divergence) is drawn as a speck and then fails the filling rate.
    ``scale`` in (0, 1] shrinks the drawing and ``offset`` in [0, 1]^2 places it within the
    slack (default: centred, full size).
    """
    b = x.shape[0]
    lo = torch.stack([x.amin(1), y.amin(1)], 1)
    hi = torch.stack([x.amax(1), y.amax(1)], 1)
    extent = (hi - lo).amax(-1).clamp_min(1e-9)  # [B]
    if scale is None:
        scale = torch.ones(b)
    if offset is None:
        offset = torch.full((b, 2), 0.5)
    size = (hi - lo) / extent[:, None] * scale[:, None]  # drawing size in unit-box units
    start = (1.0 - size) * offset
    k = (scale / extent)[:, None]
    return ((x - lo[:, :1]) * k + start[:, :1]), ((y - lo[:, 1:]) * k + start[:, 1:])


def _pixel_index(x: torch.Tensor, y: torch.Tensor, grid: int) -> torch.Tensor:
    """Unit-box points of B images -> flat indices into a [B, grid, grid] raster."""
    b = x.shape[0]
    ix = (x * grid).nan_to_num_(0.0).clamp_(0, grid - 1).long()
    iy = (y * grid).nan_to_num_(0.0).clamp_(0, grid - 1).long()
    return (iy * grid + ix + (torch.arange(b) * (grid * grid))[:, None]).flatten()


def filling_rate(systems: list[IFS] | tuple[torch.Tensor, torch.Tensor], grid: int = FILL_GRID,
                 seed: int = 0) -> torch.Tensor:
    """FractalDB's filling rate: fraction of a canonical ``grid`` x ``grid`` render that is covered.

    Accepts a list of IFS or (maps [B, M, 6], probs [B, M]). Returns float32 [B] in [0, 1];
    systems that diverge get 0.
    """
    maps, probs = _stack(systems) if isinstance(systems, list) else systems
    gen = torch.Generator().manual_seed(seed)
    x, y, _ = _chaos_game(maps, probs, points_per_image=4 * grid * grid, gen=gen)
    b = x.shape[0]
    finite = (x.abs().amax(1) < 1e5) & (y.abs().amax(1) < 1e5)  # also False for nan
    flat = _pixel_index(*_fit_to_unit_box(x, y), grid)
    covered = torch.bincount(flat, minlength=b * grid * grid).view(b, -1) > 0
    rate = covered.float().mean(1)
    return torch.where(finite, rate, torch.zeros_like(rate))


def sample_ifs_classes(num_classes: int, seed: int, *, min_maps: int = MIN_MAPS,
                       max_maps: int = MAX_MAPS, fill_threshold: float = FILL_THRESHOLD,
                       max_singular: float = MAX_SINGULAR) -> list[IFS]:
    """Draw ``num_classes`` IFS: contractive maps, filling rate >= ``fill_threshold`` (FractalDB).

    Candidates are drawn and tested in vectorised batches; deterministic for a seed.
    """
    if num_classes < 1 or not (1 <= min_maps <= max_maps):
        raise ValueError("need num_classes >= 1 and 1 <= min_maps <= max_maps")
    gen = torch.Generator().manual_seed(int(seed))
    accepted: list[IFS] = []
    batch = max(256, 16 * num_classes)
    for attempt in range(1000):
        counts = torch.randint(min_maps, max_maps + 1, (batch,), generator=gen)
        used = torch.arange(max_maps)[None] < counts[:, None]
        maps = (torch.rand(batch, max_maps, 6, generator=gen) * 2 - 1) * used[..., None]
        # Cheap test first (contractivity), then the filling rate on the survivors only.
        keep = torch.nonzero(is_contractive(maps, max_singular)).flatten()
        if keep.numel() == 0:
            continue
        maps, counts, used = maps[keep], counts[keep], used[keep]
        probs = _probs_from_maps(maps) * used
        probs = probs / probs.sum(-1, keepdim=True)
        rate = filling_rate((maps, probs), seed=int(seed) * 1000 + attempt)
        for i in torch.nonzero(rate >= fill_threshold).flatten().tolist():
            k = int(counts[i])
            accepted.append(IFS(maps[i, :k].clone(), probs[i, :k].clone()))
            if len(accepted) == num_classes:
                return accepted
    raise RuntimeError("could not find enough IFS above the filling-rate threshold")


def _random_colours(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Bright, saturated random colours (HSV with S, V high) as float RGB in [0, 1]."""
    h = torch.rand(shape, generator=gen) * 6.0
    s = 0.45 + 0.55 * torch.rand(shape, generator=gen)
    v = 0.6 + 0.4 * torch.rand(shape, generator=gen)
    k = torch.stack([(5 + h) % 6, (3 + h) % 6, (1 + h) % 6], -1)
    return v[..., None] * (1 - s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1)))


def perturb(maps: torch.Tensor, probs: torch.Tensor, gen: torch.Generator,
            perturbation: float = PERTURBATION,
            jitter: float = JITTER) -> tuple[torch.Tensor, torch.Tensor]:
    """FractalDB's weight perturbation, batched: one coefficient per system is multiplied by a
    factor in [1-p, 1+p], and every coefficient by a small jitter. Probabilities follow |det|."""
    b, m, _ = maps.shape
    used = probs > 0
    factor = 1 + jitter * (2 * torch.rand(b, m, 6, generator=gen) - 1)
    # Choose one coefficient of one *used* map per system.
    n_used = used.sum(1)
    which_map = (torch.rand(b, generator=gen) * n_used).long().clamp_max(n_used - 1)
    which_coef = torch.randint(0, 6, (b,), generator=gen)
    weight = 1 + perturbation * (2 * torch.rand(b, generator=gen) - 1)
    factor[torch.arange(b), which_map, which_coef] *= weight
    new_maps = maps * factor
    new_probs = _probs_from_maps(new_maps) * used
    return new_maps, new_probs / new_probs.sum(-1, keepdim=True)


def _random_backgrounds(b: int, size: int, gen: torch.Generator,
                        black_fraction: float) -> torch.Tensor:
    """[B, 3, S, S] float: a linear gradient between two random colours, or black."""
    c1 = torch.rand(b, 3, generator=gen) * torch.rand(b, 1, generator=gen)
    c2 = torch.rand(b, 3, generator=gen) * torch.rand(b, 1, generator=gen)
    ang = torch.rand(b, generator=gen) * 2 * math.pi
    r = torch.linspace(0.0, 1.0, size)
    y, x = torch.meshgrid(r, r, indexing="ij")
    ramp = (x[None] * torch.cos(ang)[:, None, None] + y[None] * torch.sin(ang)[:, None, None])
    ramp = (ramp - ramp.amin((1, 2), keepdim=True)) / ramp.flatten(1).amax(1).sub(
        ramp.flatten(1).amin(1)).clamp_min(1e-6)[:, None, None]
    bg = c1[:, :, None, None] + (c2 - c1)[:, :, None, None] * ramp[:, None]
    black = torch.rand(b, generator=gen) < black_fraction
    return bg * (~black).float()[:, None, None, None]


def render_fractal_batch(maps: torch.Tensor, probs: torch.Tensor, image_size: int,
                         gen: torch.Generator, *, colours: torch.Tensor | None = None,
                         augment: bool = True, background: bool | None = None,
                         points_per_image: int | None = None) -> torch.Tensor:
    """Draw B systems (maps [B, M, 6], probs [B, M]) as uint8 images [B, 3, S, S].

    One random colour per map (or ``colours`` [B, M, 3] in [0, 1]). With ``augment``: random
    rotation, horizontal/vertical flips, scale in [0.6, 1] and position. ``background``
    (default: same as ``augment``) paints a random two-colour gradient behind the fractal in
    all but BLACK_BACKGROUND of the images (the rest stay black as in FractalDB); random
    backgrounds teach the trunk that the global colour of a picture is not its class, which is
    what makes the features transfer to colourful targets. The chaos game runs for all images at
    once; points are splatted at 2S and averaged down.
    """
    b, m, _ = maps.shape
    s2 = 2 * image_size
    n_points = points_per_image or POINTS_PER_PIXEL * image_size * image_size
    x, y, which = _chaos_game(maps, probs, n_points, gen)
    if colours is None:
        colours = _random_colours((b, m), gen)
    if augment:
        theta = torch.rand(b, generator=gen) * 2 * math.pi
        flip = torch.where(torch.rand(b, 2, generator=gen) < 0.5, -1.0, 1.0)
        scale = 0.6 + 0.4 * torch.rand(b, generator=gen)
        offset = torch.rand(b, 2, generator=gen)
        cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
        x, y = x * flip[:, :1], y * flip[:, 1:]
        x, y = x * cos - y * sin, x * sin + y * cos
    else:
        scale, offset = torch.full((b,), 0.9), None
    flat = _pixel_index(*_fit_to_unit_box(x, y, scale, offset), s2)
    # Hits per (pixel, map) by an integer bincount (exact, so deterministic), then colour.
    hits = torch.bincount(flat * m + which.flatten(), minlength=b * s2 * s2 * m)
    hits = hits.view(b, s2 * s2, m).float()
    count = hits.sum(-1)  # [B, P]
    rgb = hits[..., 0, None] * colours[:, None, 0].float()  # elementwise, so order-exact
    for j in range(1, m):
        rgb += hits[..., j, None] * colours[:, None, j].float()
    mean_rgb = rgb / count.clamp_min(1)[..., None]  # [B, P, 3]
    # A pixel hit twice or more is fully lit; once, half lit (keeps sparse tails faint).
    alpha = (count / 2).clamp_(max=1)
    img = (mean_rgb * alpha[..., None]).transpose(1, 2).reshape(b, 3, s2, s2)
    if augment if background is None else background:
        bg = _random_backgrounds(b, s2, gen, BLACK_BACKGROUND)
        img = img + bg * (1 - alpha).view(b, 1, s2, s2)
    img = torch.nn.functional.avg_pool2d(img, 2)
    return (img * 255).round_().to(torch.uint8)


def make_fractal_dataset(num_classes: int, instances_per_class: int, image_size: int, seed: int,
                         *, instance_seed: int | None = None,
                         systems: list[IFS] | None = None,
                         batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """FractalDB-style dataset: ``instances_per_class`` perturbed, augmented renders per class.

    Classes come from ``sample_ifs_classes(num_classes, seed)`` (or ``systems``). Instances use
    ``instance_seed`` (default: derived from ``seed``); pass another instance seed for a held-out
    set of fresh instances of the same classes. Returns (uint8 [N, 3, S, S], int64 [N]) with
    N = num_classes * instances_per_class, ordered class-major.
    """
    if systems is None:
        systems = sample_ifs_classes(num_classes, seed)
    if len(systems) != num_classes:
        raise ValueError("len(systems) must equal num_classes")
    gen = torch.Generator().manual_seed(
        int(instance_seed) if instance_seed is not None else int(seed) * 7919 + 1)
    base_maps, base_probs = _stack(systems)
    labels = torch.arange(num_classes).repeat_interleave(instances_per_class)
    images = torch.empty(labels.numel(), 3, image_size, image_size, dtype=torch.uint8)
    for start in range(0, labels.numel(), batch_size):
        lab = labels[start:start + batch_size]
        maps, probs = perturb(base_maps[lab], base_probs[lab], gen)
        # A perturbation can push a system over the edge (divergent or degenerate): such
        # instances fall back to their class's own system.
        bad = ~is_contractive(maps) | (
            filling_rate((maps, probs), grid=32, seed=start) < FILL_THRESHOLD / 2)
        maps[bad], probs[bad] = base_maps[lab][bad], base_probs[lab][bad]
        images[start:start + lab.numel()] = render_fractal_batch(maps, probs, image_size, gen)
    return images, labels
