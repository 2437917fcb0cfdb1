"""The loader/augment group: each augmentation against a numpy statement of the reference's
transform on the same draws, the default pipeline unchanged, composition and resume."""

import math

import numpy as np
import pytest
from PIL import Image

from ddag.checkpoints.meta import CheckpointMeta
from ddag.config.resume import resumed_config
from ddag.config.run_config import config_dict, run_config
from ddag.data.augmentations.base import AugmentationPipeline, normalise
from ddag.data.augmentations.channel_aug import ChannelAdaptiveGray, ChannelExchange
from ddag.data.augmentations.color_jitter import ColorJitter, shift_hue
from ddag.data.augmentations.pad_crop_flip import PadCropFlip
from ddag.data.augmentations.random_erasing import RandomErasing
from ddag.data.augmentations.random_grayscale import RandomGrayscale
from ddag.data.datasets.base import ArrayImageSet
from ddag.data.loader import LoaderSettings, train_pipeline
from ddag.data.sampler import IdentitySampler
from ddag.errors import ConfigError
from ddag.tasks.steps.data import build_dataset, training_data
from tests.conftest import compose_config

CAJ_FILL = (0.4914, 0.4822, 0.4465)


def _image(seed=0, height=24, width=12):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _normalised(seed=0):
    return normalise(_image(seed))


def test_pad_crop_flip_is_the_reference_transform_on_the_same_draws():
    # The reference (and ddag before the group): pad with zeros, crop at (top, left) drawn in
    # [0, 2p], mirror when the next draw is below 0.5; resize first when the size differs.
    for seed in range(20):
        image = _image(seed, 30, 14)
        pipeline = AugmentationPipeline([PadCropFlip(4, True)], 24, 12)
        got = pipeline(image, "visible", np.random.default_rng(seed))
        replay = np.random.default_rng(seed)
        resized = np.asarray(Image.fromarray(image).resize((12, 24), Image.LANCZOS))
        padded = np.pad(resized, ((4, 4), (4, 4), (0, 0)))
        top, left = replay.integers(0, 9, size=2)
        expected = padded[top : top + 24, left : left + 12]
        if replay.random() < 0.5:
            expected = expected[:, ::-1]
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == np.uint8 and got.flags.c_contiguous


def _reference_erasing(img, draws, probability, sl, sh, r1, mean):
    """ChannelRandomErasing / DEEN RandomErasing in numpy, reading its random numbers from
    `draws` (uniform(0, 1), uniform(sl, sh), uniform(r1, 1/r1), randint, randint)."""
    img = img.copy()
    if draws.random() > probability:
        return img
    for _ in range(100):
        area = img.shape[1] * img.shape[2]
        target_area = draws.uniform(sl, sh) * area
        aspect_ratio = draws.uniform(r1, 1 / r1)
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < img.shape[2] and h < img.shape[1]:
            x1 = draws.integers(0, img.shape[1] - h + 1)
            y1 = draws.integers(0, img.shape[2] - w + 1)
            for c in range(3):
                img[c, x1 : x1 + h, y1 : y1 + w] = mean[c]
            return img
    return img


@pytest.mark.parametrize("area", [(0.02, 0.4), (0.2, 0.8)])
def test_random_erasing_is_the_reference_transform_on_the_same_draws(area):
    erasing = RandomErasing(0.5, area, 0.3, CAJ_FILL)
    erased = 0
    for seed in range(40):
        image = _normalised(seed)
        got = erasing(image, np.random.default_rng(seed))
        fill = np.float32(CAJ_FILL)
        expected = _reference_erasing(image, np.random.default_rng(seed), 0.5, *area, 0.3, fill)
        np.testing.assert_array_equal(got, expected)
        erased += not np.array_equal(got, image)
    assert 5 < erased < 35  # about half of the images are erased


def test_random_grayscale_is_pil_luma_with_its_probability():
    grayscale = RandomGrayscale(0.5)
    turned = 0
    for seed in range(40):
        image = _image(seed)
        got = grayscale(image, np.random.default_rng(seed))
        if np.random.default_rng(seed).random() < 0.5:
            luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            assert np.abs(got[..., 0].astype(int) - np.round(luma)).max() <= 1
            assert (got == got[..., :1]).all()
            turned += 1
        else:
            np.testing.assert_array_equal(got, image)
    assert 5 < turned < 35


def test_color_jitter_applies_its_drawn_factors_in_the_drawn_order():
    jitter = ColorJitter(brightness=0.4, contrast=0.3, saturation=0.2, hue=0.1)
    steps = jitter.draws(np.random.default_rng(3))
    assert sorted(name for name, _ in steps) == ["brightness", "contrast", "hue", "saturation"]
    bounds = {"brightness": (0.6, 1.4), "contrast": (0.7, 1.3), "saturation": (0.8, 1.2)}
    for name, factor in steps:
        low, high = bounds.get(name, (-0.1, 0.1))
        assert low <= factor <= high
    only_brightness = ColorJitter(brightness=0.5)
    image = _image(1)
    got = only_brightness(image, np.random.default_rng(5))
    replay = np.random.default_rng(5)
    replay.random()  # the probability draw
    ((name, factor),) = only_brightness.draws(replay)
    expected = np.clip(image.astype(np.float64) * factor, 0, 255)
    assert name == "brightness" and np.abs(got - expected).max() <= 1
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    cyan = np.asarray(shift_hue(Image.fromarray(red), 0.5))
    assert cyan[0, 0, 0] < 10 and cyan[0, 0, 1] > 245 and cyan[0, 0, 2] > 245


def test_caj_channel_exchange_and_adaptive_gray_match_the_authors_outcomes():
    weights = np.array([0.2989, 0.5870, 0.1140], np.float32)[:, None, None]
    exchange, adaptive = ChannelExchange(gray=2), ChannelAdaptiveGray(0.5)
    outcomes = set()
    for seed in range(30):
        image = _normalised(seed)
        idx = int(np.random.default_rng(seed).integers(0, 3))
        expected = np.stack([image[idx]] * 3)  # gray=2: a channel, never gray
        np.testing.assert_array_equal(exchange(image, np.random.default_rng(seed)), expected)
        replay = np.random.default_rng(seed)
        idx = int(replay.integers(0, 4))
        got = adaptive(image, np.random.default_rng(seed))
        if idx < 3:
            expected = np.stack([image[idx]] * 3)
        elif replay.random() > 0.5:
            expected = image
        else:
            expected = np.repeat((image * weights).sum(0, keepdims=True), 3, axis=0)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        outcomes.add(idx)
    assert outcomes == {0, 1, 2, 3}
    gray = ChannelExchange(gray=3)(_normalised(0), np.random.default_rng(1))
    assert gray.shape == (3, 24, 12)


def test_augmentations_apply_to_their_modalities_only_and_keep_the_draw_order():
    visible_only = ChannelExchange(gray=2, modalities=["visible"])
    pipeline = AugmentationPipeline([PadCropFlip(2), visible_only], 24, 12)
    assert pipeline.normalises
    image = _image(4)
    thermal = pipeline(image, "thermal", np.random.default_rng(9))
    np.testing.assert_allclose(
        thermal, normalise(PadCropFlip(2)(image, np.random.default_rng(9))), atol=1e-6
    )
    with pytest.raises(ConfigError, match="modalities"):
        RandomGrayscale(modalities=["infrared"])


def _pairs(count=8):
    ids = np.repeat(np.arange(2), count // 2)
    images = np.stack([_image(i, 20, 10) for i in range(count)])
    return ArrayImageSet(images, ids, np.zeros(count, np.int64), [str(i) for i in range(count)])


def _first_batch(augmentations, seed=0, workers=1):
    visible, thermal = _pairs(), _pairs()
    settings = LoaderSettings(num_ids=2, num_instances=2, height=20, width=10, num_workers=workers)
    sampler = IdentitySampler(visible.ids, thermal.ids, 2, 2, seed=seed)
    pipeline = train_pipeline(visible, thermal, sampler, settings, augmentations)
    return [t.asnumpy() for t in next(pipeline.create_tuple_iterator(num_epochs=1))]


def test_normalising_in_numpy_matches_the_mindspore_pipeline():
    plain = _first_batch([PadCropFlip(3)])
    # The erasing draws once per thermal image, after that image's crop and flip: same crops.
    no_op = RandomErasing(probability=0.0, modalities=["thermal"])
    numpy_normalised = _first_batch([PadCropFlip(3), no_op])
    for a, b in zip(plain, numpy_normalised):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    assert plain[0].shape == (4, 3, 20, 10)


def test_the_normalisation_lookup_equals_torchvisions_float32_arithmetic():
    from ddag.data.augmentations.base import IMAGENET_MEAN, IMAGENET_STD, normalise

    levels = np.tile(np.arange(256, dtype=np.uint8), 9).reshape(
        32, 24, 3
    )  # every level, each channel
    flipped = levels[:, ::-1]  # a flipped view, as the crop-and-flip hands it on
    for image in (levels, flipped):
        scaled = image.astype(np.float32) / np.float32(255)  # ToTensor, then Normalize
        mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
        direct = ((scaled - mean) / std).transpose(2, 0, 1)
        got = normalise(image)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, direct)  # bit for bit, every level of each channel


def test_augmented_batches_repeat_with_any_number_of_workers():
    caj = [PadCropFlip(3), RandomErasing(fill=CAJ_FILL), ChannelExchange(probability=0.5)]
    one, two = _first_batch(caj, seed=4), _first_batch(caj, seed=4, workers=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[0], _first_batch(caj, seed=5)[0])


def test_the_group_composes_as_a_list_and_validates_its_keys(tmp_path):
    chosen = "loader/augment=[pad_crop_flip,random_erasing,channel_aug]"
    config = run_config(compose_config([chosen], output_dir=tmp_path))
    assert list(config.loader.augment) == [
        "pad_crop_flip",
        "random_erasing",
        "channel_erasing",
        "channel_exchange",
        "channel_adaptive_gray",
    ]
    dataset = build_dataset(config)
    _, pipeline = training_data(config, dataset)
    visible = next(pipeline.create_tuple_iterator(num_epochs=1, output_numpy=True))[0]
    assert visible.dtype == np.float32 and visible.shape[1:] == (3, 64, 32)
    typo = "loader.augment.random_erasing.probabilty=0.3"
    with pytest.raises(ConfigError, match="did you mean loader.augment.random_erasing.probability"):
        run_config(compose_config([chosen, "+" + typo], output_dir=tmp_path))
    with pytest.raises(ConfigError, match="probability=1.5 must be in"):
        cfg = run_config(compose_config([chosen, "loader.augment.random_erasing.probability=1.5"]))
        training_data(cfg, dataset)


def test_the_default_is_the_reference_pad_crop_flip_and_old_runs_resume_with_it(tmp_path):
    config = run_config(compose_config([], output_dir=tmp_path))
    (node,) = config.loader.augment.values()
    assert node["_target_"].endswith("PadCropFlip") and node["padding"] == config.loader.padding
    stored = config_dict(run_config(compose_config(["loader.padding=6"], output_dir=tmp_path)))
    del stored["loader"]["augment"]  # a run config written before the group existed (format 2)
    stored = CheckpointMeta.from_dict({"format_version": 2, "config": stored}).config
    composed = config_dict(config)
    resumed, changes = resumed_config(stored, composed, ["task.resume"], False)
    assert not changes
    assert resumed["loader"]["augment"]["pad_crop_flip"]["padding"] == 6


def _two_view_batch(augmentations, views):
    visible, thermal = _pairs(), _pairs()
    settings = LoaderSettings(
        num_ids=2, num_instances=2, height=20, width=10, num_workers=1, visible_views=views
    )
    sampler = IdentitySampler(visible.ids, thermal.ids, 2, 2, seed=3)
    pipeline = train_pipeline(visible, thermal, sampler, settings, augmentations)
    return [t.asnumpy() for t in next(pipeline.create_tuple_iterator(num_epochs=1))]


def test_two_visible_views_come_in_two_blocks_as_caj_concatenates_them():
    exchange = ChannelExchange(gray=2, probability=1.0, modalities=["second_view"])
    two = _two_view_batch([PadCropFlip(3), exchange], views=2)
    # One view, normalised in numpy too (a no-op of the normalised stage on thermal images).
    one = _two_view_batch([PadCropFlip(3), RandomErasing(0.0, modalities=["thermal"])], views=1)
    visible, thermal, visible_labels, thermal_labels = two
    assert visible.shape == (8, 3, 20, 10) and thermal.shape == (4, 3, 20, 10)
    np.testing.assert_array_equal(visible_labels, np.concatenate([one[2], one[2]]))
    np.testing.assert_array_equal(thermal_labels, one[3])
    # The first views draw first: they are the one-view batch's visible images.
    np.testing.assert_allclose(visible[:4], one[0], atol=1e-6)
    # The second views are channel-exchanged: one channel copied into all three.
    second = visible[4:]
    assert all(np.array_equal(v[0], v[1]) and np.array_equal(v[1], v[2]) for v in second)
    assert not all(np.array_equal(v[0], v[1]) for v in visible[:4])


def test_two_views_refuse_terms_that_read_the_batch_as_halves():
    from ddag.losses.hetero_center import HeteroCenter
    from ddag.losses.objective import Objective
    from ddag.losses.terms import CrossEntropy
    from ddag.models.architecture import build_network

    config = run_config(compose_config([]))
    network = build_network(config.model, 4)
    objective = Objective(network, {"id": CrossEntropy("logits")}, 2, visible_views=2)
    assert objective.graph_branch.noise_size == network.noise_size(6)  # 2B visible + B thermal
    with pytest.raises(ConfigError, match="equal visible and thermal halves"):
        Objective(network, {"hc": HeteroCenter("pool")}, 2, visible_views=2)


@pytest.mark.parametrize("preset", ["caj_sysu_all", "caj_regdb_v2t"])
def test_caj_presets_train_as_the_authors_do(preset, tmp_path):
    config = run_config(compose_config([f"experiment={preset}"], output_dir=tmp_path))
    assert config.loader.visible_views == 2 and config.task.epochs == 100 and config.eval.flip
    assert list(config.loss) == ["id", "adp"] and config.loss["adp"]["square"] == 1
    exchange = config.loader.augment["channel_exchange"]
    assert exchange["modalities"] == ["second_view"] and exchange["probability"] == 1.0
    assert config.loader.augment["channel_erasing"]["fill"] == list(CAJ_FILL)
    assert config.model["backbone"]["non_local"] == [0, 2, 3, 0]


def test_an_epoch_window_limits_an_augmentation_to_its_epochs():
    from ddag.engine.phases import EpochWindow

    gray = RandomGrayscale(1.0, modalities=["visible"])
    pipeline = AugmentationPipeline([gray], 24, 12, windows=[EpochWindow(0, 2)])
    image = _image(3)
    for epoch, expect_gray in ((0, True), (1, True), (2, False), (7, False)):
        out = pipeline(image, "visible", np.random.default_rng(0), epoch)
        is_gray = bool(np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2]))
        assert is_gray == expect_gray, epoch
    assert np.array_equal(pipeline(image, "thermal", np.random.default_rng(0), 0), image)


def test_the_pmt_augmentations_turn_visible_images_gray_only_in_the_first_phase(tmp_path):
    overrides = ["loader/augment=pmt", "loss=pmt", "loss.intra.until_epoch=1", "loader.height=24"]
    overrides += ["loader.width=12", "loader.num_ids=2", "loader.num_instances=2"]
    cfg = run_config(compose_config(overrides, output_dir=tmp_path))
    dataset = build_dataset(cfg)
    sampler, pipeline = training_data(cfg, dataset)
    source = pipeline.ddag_source
    mean = np.asarray([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.asarray([0.229, 0.224, 0.225], np.float32)[:, None, None]

    def channels_equal(image):  # erased pixels hold per-channel constants: ignore them
        pixels = np.round(image * std * 255 + mean * 255)
        return np.mean(np.all(pixels == pixels[:1], axis=0))

    first = [channels_equal(source.read(slot)[0]) for slot in range(4)]
    later = [channels_equal(source.read(len(sampler) + slot)[0]) for slot in range(4)]
    assert min(first) > 0.5 and max(later) < 0.5


def test_gaussian_blur_is_the_sampled_gaussian_convolution_with_mirrored_borders():
    from ddag.data.augmentations.gaussian_blur import GaussianBlur, blur, gaussian_kernel

    kernel = gaussian_kernel(5, 1.5)
    x = np.arange(-2, 3)
    np.testing.assert_allclose(kernel, np.exp(-(x**2) / 4.5) / np.exp(-(x**2) / 4.5).sum(), 1e-6)
    image = _image(4, 16, 10)
    out = blur(image, 5, 1.5)
    padded = np.pad(image.astype(np.float64), ((2, 2), (2, 2), (0, 0)), "reflect")
    direct = np.zeros(image.shape)
    weights = np.outer(kernel, kernel)
    for dy in range(5):
        for dx in range(5):
            direct += weights[dy, dx] * padded[dy : dy + 16, dx : dx + 10]
    assert np.abs(out.astype(int) - np.round(direct)).max() <= 1
    assert np.array_equal(blur(np.full((8, 8, 3), 77, np.uint8), 21, 3.0), np.full((8, 8, 3), 77))
    with pytest.raises(ConfigError, match="kernel_size=4 must be odd"):
        GaussianBlur(kernel_size=4)


def test_random_choice_applies_one_of_its_augmentations_per_image():
    from ddag.data.augmentations.gaussian_blur import GaussianBlur
    from ddag.data.augmentations.random_choice import RandomChoice

    choice = RandomChoice({"flip": PadCropFlip(0, True), "gray": RandomGrayscale(1.0)})
    image = _image(5)
    seen = set()
    for seed in range(40):
        out = choice(image, np.random.default_rng(seed))
        gray = np.all(out[..., 0] == out[..., 2])
        seen.add("gray" if gray else ("flip" if np.array_equal(out, image[:, ::-1]) else "none"))
    assert seen == {"gray", "flip", "none"}  # the flip itself mirrors half of the time
    with pytest.raises(ConfigError, match="not a pixel-stage augmentation"):
        RandomChoice({"erase": RandomErasing()})
    assert RandomChoice({"blur": GaussianBlur()}).choices


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ColorJitter(brightness=float("inf")), "brightness=inf must be a finite"),
        (lambda: ColorJitter(hue=float("nan")), "hue=nan must be a finite"),
        (lambda: RandomErasing(fill=(0.1, float("inf"), 0.2)), "one finite value per channel"),
    ],
)
def test_non_finite_strengths_are_refused_when_built(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
