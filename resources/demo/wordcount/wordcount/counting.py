"""The counting itself: read a file line by line, normalise words, tally them."""

import collections
import string

PUNCTUATION = string.punctuation + "\u201c\u201d\u2018\u2019"


def normalise(word):
    """Lower-case a word and strip punctuation from both ends; empty when nothing is left."""
    return word.strip(PUNCTUATION).lower()


def count_words(path):
    """Return a Counter of normalised words in the file at `path`."""
    counts = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            for raw in line.split():
                word = normalise(raw)
                if word:
                    counts[word] += 1
    return counts


def top_words(path, n=10):
    """The n most frequent words, ties broken alphabetically."""
    counts = count_words(path)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
