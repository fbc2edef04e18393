"""The Shapes data set: same seed, same data; captions say what the pixels show."""
import numpy as np

from modules.zoo import shapes


def test_same_seed_same_images_and_captions():
    a = shapes.make_dataset(64, seed=7, two_shape_probability=0.3)
    b = shapes.make_dataset(64, seed=7, two_shape_probability=0.3)
    assert np.array_equal(a.images, b.images)
    assert [shapes.caption(s) for s in a.scenes] == [shapes.caption(s) for s in b.scenes]
    c = shapes.make_dataset(64, seed=8, two_shape_probability=0.3)
    assert not np.array_equal(a.images, c.images)


def test_images_are_rgb_32px_uint8():
    data = shapes.make_dataset(8, seed=0)
    assert data.images.shape == (8, 32, 32, 3) and data.images.dtype == np.uint8
    t = data.tensors()
    assert t.shape == (8, 3, 32, 32) and t.min() >= -1 and t.max() <= 1


def test_full_caption_names_every_factor():
    scene = shapes.Scene((shapes.ShapeSpec("circle", "red", "large", "top left"),), "white")
    assert shapes.caption(scene) == "a large red circle in the top left on a white background"
    assert shapes.caption(scene, with_size=False, with_place=False) == "a red circle on a white background"


def test_caption_matches_pixels():
    # The shape's colour is the most common non-background colour, found near its named place.
    data = shapes.make_dataset(100, seed=3)
    for image, scene in zip(data.images, data.scenes):
        shape = scene.shapes[0]
        text = shapes.caption(scene)
        for word in (shape.kind, shape.colour, shape.size, scene.background):
            assert word in text
        row, column = divmod(shapes.POSITIONS.index(shape.position), 3)
        cy, cx = 8 + 8 * row, 8 + 8 * column
        centre = image[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).astype(int)
        colour = np.array(shapes.COLOURS[shape.colour])
        background = np.array(shapes.BACKGROUNDS[scene.background])
        d_colour = np.abs(centre - colour).sum(1).min()
        assert d_colour < 60, (text, centre)
        assert np.abs(image.reshape(-1, 3).astype(int) - background).sum(1).min() == 0


def test_training_data_avoids_heldout_combos():
    data = shapes.make_dataset(500, seed=1, two_shape_probability=0.3)
    for scene in data.scenes:
        for s in scene.shapes:
            assert s.combo not in shapes.HELDOUT_COMBOS
    assert len(shapes.HELDOUT_COMBOS) == 36


def test_two_shape_scenes_use_distinct_places():
    data = shapes.make_dataset(200, seed=2, two_shape_probability=1.0)
    for scene in data.scenes:
        assert len(scene.shapes) == 2
        assert scene.shapes[0].position != scene.shapes[1].position
        assert " and " in shapes.caption(scene)


def test_every_caption_word_is_in_the_vocabulary():
    vocabulary = set(shapes.caption_vocabulary())
    rng = np.random.default_rng(0)
    for scene in shapes.make_dataset(200, seed=4, two_shape_probability=0.5).scenes:
        assert set(shapes.random_caption(scene, rng).split()) <= vocabulary
