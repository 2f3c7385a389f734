"""A synthetic sorting task for the tests: like ashlib.data.SortingTask, but digit d is an image of
constant intensity d / 9, so a key network can read a number without MNIST."""

import torch


class GreyDigits:
    """``sample(b)`` -> (images (b, n, digits, 28, 28), numbers (b, n), the sorting permutation)."""

    source = "synthetic grey digits"

    def __init__(self, n, digits=3, seed=0):
        self.n, self.digits = n, digits
        self.generator = torch.Generator().manual_seed(seed)  # saved by checkpoints, like SortingTask's

    def sample(self, b):
        numbers = torch.randint(0, 10**self.digits, (b, self.n), generator=self.generator)
        powers = 10 ** torch.arange(self.digits - 1, -1, -1)
        digit = numbers.unsqueeze(-1) // powers % 10  # (b, n, digits)
        images = (digit.float() / 9).view(b, self.n, self.digits, 1, 1).expand(b, self.n, self.digits, 28, 28)
        return images.contiguous(), numbers, numbers.argsort(dim=1, stable=True)
