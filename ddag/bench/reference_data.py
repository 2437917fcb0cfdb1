"""Images/s of a torch DataLoader feeding the references' training pipeline, for a side-by-side
ratio with ddag's (`task=bench "task.parts=[data]" task.reference=...`).

Self-contained (numpy, Pillow and torch only, nothing of ddag or torchvision), so it runs under
any Python that has torch. It stands for the reference loaders (mangye16/DDAG and CAJ's
`data_loader.py`: SYSU-MM01 packed into uint8 arrays at 288x144, one visible and one thermal
image per item, torchvision transforms on PIL images and tensors) with the same steps written
here on the same libraries torchvision calls: PIL pad (10, zeros), random crop and horizontal
flip, to a float tensor in [0, 1], ImageNet normalisation, then per `--augment`: random erasing
(DEEN's: p 0.5, area 0.02-0.4, aspect >= 0.3, ImageNet means) and CAJ's channel augmentation
(channel-level random erasing of both modalities, then for visible images a channel exchange
and for thermal images an adaptive gray, each p 0.5). Batches come from a torch DataLoader
with `--workers` worker processes.
"""

import argparse
import json
import math
import os
import random
import sys
import time

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _erase(image, area, aspect, fill, per_channel: bool):
    """Random erasing of a (3, H, W) tensor: one rectangle, filled per channel, or (channel
    erasing) filled on one random channel only."""
    _, height, width = image.shape
    for _ in range(100):
        target = random.uniform(*area) * height * width
        ratio = random.uniform(aspect, 1 / aspect)
        h, w = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if w < width and h < height:
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            if per_channel:
                channel = random.randint(0, 2)
                image[channel, top : top + h, left : left + w] = fill[channel]
            else:
                for channel in range(3):
                    image[channel, top : top + h, left : left + w] = fill[channel]
            return image
    return image


def build_transform(torch, height: int, width: int, padding: int, augment: list, modality: str):
    """PIL image -> normalised (3, H, W) tensor with the listed augmentations."""
    import numpy as np
    from PIL import Image, ImageOps

    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)

    def transform(array):
        image = ImageOps.expand(Image.fromarray(array), border=padding, fill=0)
        top = random.randint(0, image.height - height)
        left = random.randint(0, image.width - width)
        image = image.crop((left, top, left + width, top + height))
        if random.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        tensor = (tensor.permute(2, 0, 1) - mean) / std
        if "random_erasing" in augment and random.random() < 0.5:
            tensor = _erase(tensor, (0.02, 0.4), 0.3, MEAN, per_channel=False)
        if "channel_aug" in augment:
            if random.random() < 0.5:
                tensor = _erase(tensor, (0.02, 0.4), 0.3, (0.4914, 0.4822, 0.4465), True)
            if random.random() < 0.5:
                if modality == "visible":  # one of R, G, B for all three channels
                    tensor = tensor[random.randint(0, 2)].expand(3, -1, -1).clone()
                else:  # adaptive gray: the luminance in all three channels
                    gray = 0.2989 * tensor[0] + 0.587 * tensor[1] + 0.114 * tensor[2]
                    tensor = gray.expand(3, -1, -1).clone()
        return tensor

    return transform


def time_reference_loader(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)  # as each DataLoader worker runs
    rng = np.random.default_rng(0)
    shape = (args.images, args.height, args.width, 3)
    visible = rng.integers(0, 255, shape, dtype=np.uint8)
    thermal = rng.integers(0, 255, shape, dtype=np.uint8)
    transforms = {
        m: build_transform(torch, args.height, args.width, args.padding, args.augment, m)
        for m in ("visible", "thermal")
    }

    class PairData(torch.utils.data.Dataset):  # the references' SYSUData.__getitem__
        def __len__(self):
            return args.images

        def __getitem__(self, index):
            return (
                transforms["visible"](visible[index]),
                transforms["thermal"](thermal[index]),
                index,
                index,
            )

    loader = torch.utils.data.DataLoader(
        PairData(),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=False,
    )
    batches = iter(loader)
    next(batches)  # workers started and warm
    start = last = time.perf_counter()
    count = 0
    for index in range(args.batches):
        batch = next(batches)
        count += 2 * len(batch[0])
        if time.perf_counter() - last > 10.0 or index + 1 == args.batches:
            last = time.perf_counter()
            sys.stderr.write(
                f"batch {index + 1}/{args.batches}, {count / (last - start):.0f} images/s\n"
            )
    seconds = time.perf_counter() - start
    return {
        "torch": torch.__version__,
        "workers": args.workers,
        "images_per_s": count / seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--padding", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="pairs per batch (P x K)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--images", type=int, default=2048, help="packed images per modality")
    parser.add_argument("--augment", nargs="*", default=[], help="random_erasing channel_aug")
    args = parser.parse_args(argv)
    args.images = max(args.images, args.batch * (args.batches + 1))
    sys.stdout.write(json.dumps(time_reference_loader(args)) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
