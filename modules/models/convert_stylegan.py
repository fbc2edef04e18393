"""Convert an NVIDIA StyleGAN2-ADA / StyleGAN3 network pickle into our self-describing .safetensors:

    python -m modules.models.convert_stylegan network.pkl [out.safetensors]

The pickle is read without running any of its code (modules/models/stylegan_pickle.py); the generator
(G_ema when present) is written with its architecture and settings in the metadata, so the pickle is no
longer needed. The GAN tab's "Convert to .safetensors" button does the same."""
from __future__ import annotations

import argparse
import sys

from modules.errors import BadModelFile
from modules.models.stylegan_files import convert_pickle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modules.models.convert_stylegan", description=__doc__.split("\n")[0])
    parser.add_argument("pickle", help="an NVIDIA StyleGAN2-ADA-pytorch or StyleGAN3 network .pkl")
    parser.add_argument("out", nargs="?", help="the .safetensors to write (default: beside the pickle)")
    args = parser.parse_args(argv)
    try:
        out = convert_pickle(args.pickle, args.out)
    except BadModelFile as error:
        print(f"not converted: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
