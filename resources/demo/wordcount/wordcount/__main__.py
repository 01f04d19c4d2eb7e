"""Command line: python -m wordcount FILE [--top N]."""

import argparse

from .counting import top_words


def main():
    parser = argparse.ArgumentParser(prog="wordcount", description="Print the most frequent words in a file.")
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=10, help="how many words to print (default 10)")
    args = parser.parse_args()
    for word, count in top_words(args.file, args.top):
        print(f"{count:6d}  {word}")


if __name__ == "__main__":
    main()
