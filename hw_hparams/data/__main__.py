"""`python -m hw_hparams.data fake --root DIR [--train N] [--test M] [--seed S]`: write a small
dataset in CIFAR-100's exact on-disk format, for offline runs and tests."""

from __future__ import annotations

import sys

from hw_hparams.config.errors import OneLineParser, say
from hw_hparams.data.fake import write_fake_cifar100


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m hw_hparams.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fake = sub.add_parser("fake", help="write a generated dataset in cifar-100-python/ format")
    fake.add_argument("--root", required=True, help="folder that will hold cifar-100-python/")
    fake.add_argument("--train", type=int, default=5000, help="training images (default 5000)")
    fake.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    fake.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        folder = write_fake_cifar100(args.root, args.train, args.test, args.seed)
    except (ValueError, OSError) as err:
        say(str(err))
        return 2
    print(f"wrote {args.train} training and {args.test} test images to {folder}")
    print(
        f"train on it with: python -m hw_hparams.train data.root={args.root} data.verify_checksums=false "
        f"data.download=false data.val_size={max(1, args.train // 5)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
