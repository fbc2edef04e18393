"""The built-in CLIP tokenizer files are built offline and make every caption word one token."""
from modules.zoo import shapes
from modules.zoo.train.clip_tokenizer import MAX_LENGTH, load_tokenizer, write_tokenizer_files


def test_every_caption_word_is_one_token(tmp_path):
    tokenizer = load_tokenizer(write_tokenizer_files(tmp_path))
    assert (tmp_path / "vocab.json").exists() and (tmp_path / "merges.txt").exists()
    for word in shapes.caption_vocabulary():
        assert tokenizer.tokenize(word) == [word + "</w>"]
    ids = tokenizer("a large red circle in the top left and a small blue star in the bottom right "
                    "on a white background").input_ids
    assert len(ids) <= MAX_LENGTH
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_unknown_words_still_tokenize(tmp_path):
    tokenizer = load_tokenizer(write_tokenizer_files(tmp_path))
    assert tokenizer.tokenize("a zebra")[0] == "a</w>"
    assert len(tokenizer("a zebra").input_ids) > 3
