from wordcount.counting import normalise, top_words


def test_normalise_strips_punctuation():
    assert normalise("Hello,") == "hello"
    assert normalise("...") == ""


def test_top_words_breaks_ties_alphabetically(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("b a c a b")
    assert top_words(f, 2) == [("a", 2), ("b", 2)]
