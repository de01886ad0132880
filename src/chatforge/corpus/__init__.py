"""The built-in corpus: a seeded, bilingual (English + Turkish) invented world and its texts.

    world.py      entities and facts (`World.build(seed, cfg)`), the ground truth of everything
    templates.py  phrasings of each fact as a sentence and as a question, in both languages
    turkish.py    vowel harmony and case endings for the world's invented names
    lexicon.py    closed sets of values (colours, jobs...) and the name generator
    text.py       pre-training documents: articles, stories, lists, arithmetic, code
    tasks.py      arithmetic word problems with worked solutions
    programs.py   small Python functions with docstrings and asserts
    chat.py       SFT conversations and the held-out fact questions
    build.py      the pipeline stage writing all of it into run/corpus/
    web.py        the dirty web (WARC pages, wiki XML, books, code) for the data stage

Every generator takes the world and a seed and draws from its own `random.Random`, so the same
seed gives byte-identical files and a new kind of text (web pages, preference pairs, benchmark-
format evaluation sets) can be added from the same world without changing the existing ones.
"""
